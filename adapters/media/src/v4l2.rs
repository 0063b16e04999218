//! The USB-camera source: Video4Linux2 (`/dev/video{id}`) with memory-mapped streaming, in MJPEG
//! (preferred: less USB bandwidth, higher frame rates) or YUYV, plus [`discover_cameras`].
//! The few ioctls needed are declared here over `libc`, so the build needs no kernel headers or
//! bindgen. A capture thread owns the device and copies each frame into a one-slot mailbox that
//! keeps the newest frame; the async side converts only the frames it takes, so a pipeline slower
//! than the camera skips old frames without paying to decode them. Dropping the source wakes and
//! joins the thread, so the device is free again when the drop returns.
//! Linux on 64-bit targets only (the structure layouts below are those of LP64).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;
use visprompt_runtime::{FrameSource, RgbImage, SourceError};

use crate::decode::decode_bounded;
use crate::yuv::yuyv_to_rgb;

/// The frame size asked of the camera; the driver picks its nearest supported size.
pub const REQUESTED_SIZE: (u32, u32) = (640, 480);

/// How long the camera may deliver nothing before it counts as gone.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Buffers shared with the driver: enough for the driver to fill one while we copy another.
const BUFFER_COUNT: u32 = 4;

/// How long dropping a source waits for its capture thread to finish. The thread is woken at
/// once and only has to stop streaming, so this is a bound for a stuck driver, not a delay.
const JOIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The kernel's ABI, `linux/videodev2.h`: only the fields and constants used here.
mod sys {
    pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
    pub const MEMORY_MMAP: u32 = 1;
    pub const FIELD_ANY: u32 = 0;
    pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
    pub const CAP_STREAMING: u32 = 0x0400_0000;
    pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;

    pub const fn fourcc(code: &[u8; 4]) -> u32 {
        u32::from_le_bytes(*code)
    }
    pub const PIX_FMT_MJPEG: u32 = fourcc(b"MJPG");
    pub const PIX_FMT_JPEG: u32 = fourcc(b"JPEG");
    pub const PIX_FMT_YUYV: u32 = fourcc(b"YUYV");

    #[repr(C)]
    #[derive(Default)]
    pub struct Capability {
        pub driver: [u8; 16],
        pub card: [u8; 32],
        pub bus_info: [u8; 32],
        pub version: u32,
        pub capabilities: u32,
        pub device_caps: u32,
        pub reserved: [u32; 3],
    }

    #[repr(C)]
    #[derive(Default)]
    pub struct FmtDesc {
        pub index: u32,
        pub type_: u32,
        pub flags: u32,
        pub description: [u8; 32],
        pub pixelformat: u32,
        pub mbus_code: u32,
        pub reserved: [u32; 3],
    }

    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    pub struct PixFormat {
        pub width: u32,
        pub height: u32,
        pub pixelformat: u32,
        pub field: u32,
        pub bytesperline: u32,
        pub sizeimage: u32,
        pub colorspace: u32,
        pub priv_: u32,
        pub flags: u32,
        pub ycbcr_enc: u32,
        pub quantization: u32,
        pub xfer_func: u32,
    }

    /// `struct v4l2_format`: the union holds a structure with pointers, so it is 8-aligned.
    #[repr(C)]
    pub struct Format {
        pub type_: u32,
        pub fmt: FormatUnion,
    }

    #[repr(C)]
    pub union FormatUnion {
        pub pix: PixFormat,
        pub raw_data: [u8; 200],
        pub align: [u64; 25],
    }

    #[repr(C)]
    #[derive(Default)]
    pub struct RequestBuffers {
        pub count: u32,
        pub type_: u32,
        pub memory: u32,
        pub capabilities: u32,
        pub flags: u8,
        pub reserved: [u8; 3],
    }

    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    pub struct Timecode {
        pub type_: u32,
        pub flags: u32,
        pub frames: u8,
        pub seconds: u8,
        pub minutes: u8,
        pub hours: u8,
        pub userbits: [u8; 4],
    }

    /// `struct timeval` on LP64.
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    pub struct Timeval {
        pub tv_sec: i64,
        pub tv_usec: i64,
    }

    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    pub struct Buffer {
        pub index: u32,
        pub type_: u32,
        pub bytesused: u32,
        pub flags: u32,
        pub field: u32,
        pub timestamp: Timeval,
        pub timecode: Timecode,
        pub sequence: u32,
        pub memory: u32,
        /// `union { offset; userptr; planes; fd }`: for MMAP the offset, in the low half.
        pub m: u64,
        pub length: u32,
        pub reserved2: u32,
        pub request_fd: i32,
    }

    const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
        (dir << 30) | ((size as u64) << 16) | ((b'V' as u64) << 8) | nr
    }
    const READ: u64 = 2;
    const WRITE: u64 = 1;
    const RW: u64 = 3;
    pub const QUERYCAP: u64 = ioc(READ, 0, size_of::<Capability>());
    pub const ENUM_FMT: u64 = ioc(RW, 2, size_of::<FmtDesc>());
    pub const S_FMT: u64 = ioc(RW, 5, size_of::<Format>());
    pub const REQBUFS: u64 = ioc(RW, 8, size_of::<RequestBuffers>());
    pub const QUERYBUF: u64 = ioc(RW, 9, size_of::<Buffer>());
    pub const QBUF: u64 = ioc(RW, 15, size_of::<Buffer>());
    pub const DQBUF: u64 = ioc(RW, 17, size_of::<Buffer>());
    pub const STREAMON: u64 = ioc(WRITE, 18, size_of::<i32>());
    pub const STREAMOFF: u64 = ioc(WRITE, 19, size_of::<i32>());

    // The sizes the kernel expects on LP64; a mismatch would make every ioctl fail (or worse).
    const _: () = assert!(size_of::<Capability>() == 104);
    const _: () = assert!(size_of::<FmtDesc>() == 64);
    const _: () = assert!(size_of::<Format>() == 208);
    const _: () = assert!(size_of::<RequestBuffers>() == 20);
    const _: () = assert!(size_of::<Buffer>() == 88);
    const _: () = assert!(QUERYCAP == 0x8068_5600);
    const _: () = assert!(DQBUF == 0xc058_5611);
    const _: () = assert!(S_FMT == 0xc0d0_5605);
}

/// Runs one ioctl, retrying when a signal interrupted it.
///
/// # Safety
/// `arg` must be the structure that `request` expects.
unsafe fn ioctl<T>(fd: &OwnedFd, request: u64, arg: &mut T) -> std::io::Result<()> {
    loop {
        // SAFETY: the caller passes the structure `request` expects; it outlives the call.
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                request as libc::Ioctl,
                arg as *mut T as *mut libc::c_void,
            )
        };
        if rc != -1 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn device_path(device_id: u32) -> String {
    format!("/dev/video{device_id}")
}

/// Opens a device node read-write, without blocking on it.
fn open_device(path: &str) -> std::io::Result<OwnedFd> {
    let c_path = CString::new(path).map_err(std::io::Error::other)?;
    // SAFETY: a valid C string; the returned descriptor is checked and then owned.
    let fd = unsafe {
        libc::open(
            c_path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The `offset` member of a buffer's `m` union: its first four bytes.
fn mmap_offset(buf: &sys::Buffer) -> libc::off_t {
    let first = buf.m.to_ne_bytes();
    u32::from_ne_bytes([first[0], first[1], first[2], first[3]]) as libc::off_t
}

/// What a device says it is.
fn query_capability(fd: &OwnedFd) -> std::io::Result<sys::Capability> {
    let mut cap = sys::Capability::default();
    // SAFETY: QUERYCAP takes a v4l2_capability.
    unsafe { ioctl(fd, sys::QUERYCAP, &mut cap)? };
    Ok(cap)
}

/// The capabilities of this node (not of the whole physical device, which may have several).
fn node_caps(cap: &sys::Capability) -> u32 {
    if cap.capabilities & sys::CAP_DEVICE_CAPS != 0 {
        cap.device_caps
    } else {
        cap.capabilities
    }
}

/// A camera found by [`discover_cameras`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraInfo {
    /// N of `/dev/videoN`: the `device_id` of a USB-camera source.
    pub device_id: u32,
    /// The card name the driver reports, such as "HD Pro Webcam C920".
    pub name: String,
    pub driver: String,
    pub bus: String,
}

/// The video-capture devices present now, by device id. Blocking.
///
/// Nodes that cannot be opened (busy, no permission) or that do not capture video (metadata
/// nodes, encoders, outputs) are left out.
pub fn discover_cameras() -> Vec<CameraInfo> {
    let Ok(entries) = std::fs::read_dir("/dev") else {
        return Vec::new();
    };
    let mut cameras: Vec<CameraInfo> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let device_id = name.strip_prefix("video")?.parse::<u32>().ok()?;
            let fd = open_device(&device_path(device_id)).ok()?;
            let cap = query_capability(&fd).ok()?;
            (node_caps(&cap) & sys::CAP_VIDEO_CAPTURE != 0).then(|| CameraInfo {
                device_id,
                name: c_string(&cap.card),
                driver: c_string(&cap.driver),
                bus: c_string(&cap.bus_info),
            })
        })
        .collect();
    cameras.sort_by_key(|c| c.device_id);
    cameras
}

/// The pixel formats the capture thread can turn into RGB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    Mjpeg,
    Yuyv,
}

/// Converts one captured buffer to RGB. Blocking; public so the conversions can be tested without
/// a camera.
///
/// Returns `Corrupt` for a buffer that does not hold a whole frame.
pub fn convert_frame(
    format: PixelFormat,
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> Result<RgbImage, SourceError> {
    match format {
        PixelFormat::Mjpeg => decode_bounded(
            image::ImageReader::new(std::io::Cursor::new(data)),
            "camera frame",
        ),
        PixelFormat::Yuyv => yuyv_to_rgb(data, width, height, stride).ok_or_else(|| {
            SourceError::Corrupt(format!(
                "camera frame: {} bytes is too short for {width}x{height} YUYV",
                data.len()
            ))
        }),
    }
}

/// A memory-mapped driver buffer, unmapped on drop.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; only the capture thread touches it.
unsafe impl Send for Mapped {}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// A streaming device: its descriptor, buffers and negotiated format. Stops streaming on drop.
struct Stream {
    fd: OwnedFd,
    buffers: Vec<Mapped>,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut kind = sys::BUF_TYPE_VIDEO_CAPTURE as i32;
        // SAFETY: STREAMOFF takes the buffer type as an int. Failure leaves nothing to undo.
        let _ = unsafe { ioctl(&self.fd, sys::STREAMOFF, &mut kind) };
        // Then the fields drop: the descriptor closes and the buffers unmap, which is sound in
        // that order because a mapping outlives the descriptor it came from.
    }
}

impl Stream {
    /// Opens, negotiates and starts streaming. Blocking.
    fn start(device_id: u32) -> Result<Self, SourceError> {
        let path = device_path(device_id);
        let fail = |what: &str, e: std::io::Error| {
            let why = match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                    "no such device (is the camera plugged in?)".to_string()
                }
                Some(libc::EBUSY) => "the device is busy (another program is using it)".into(),
                Some(libc::EACCES) | Some(libc::EPERM) => {
                    "permission denied (is the server in the video group?)".into()
                }
                _ => e.to_string(),
            };
            SourceError::Unavailable(format!("camera {path}: {what}: {why}"))
        };
        let fd = open_device(&path).map_err(|e| fail("cannot open", e))?;
        let cap = query_capability(&fd).map_err(|e| fail("not a V4L2 device", e))?;
        let caps = node_caps(&cap);
        if caps & sys::CAP_VIDEO_CAPTURE == 0 || caps & sys::CAP_STREAMING == 0 {
            return Err(SourceError::Unsupported(format!(
                "camera {path} ({}) cannot stream video capture",
                c_string(&cap.card)
            )));
        }

        let offered = Self::formats(&fd);
        let (format, fourcc) = if let Some(&f) = offered
            .iter()
            .find(|&&f| f == sys::PIX_FMT_MJPEG || f == sys::PIX_FMT_JPEG)
        {
            (PixelFormat::Mjpeg, f)
        } else if offered.contains(&sys::PIX_FMT_YUYV) {
            (PixelFormat::Yuyv, sys::PIX_FMT_YUYV)
        } else {
            let names = offered
                .iter()
                .map(|f| String::from_utf8_lossy(&f.to_le_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(SourceError::Unsupported(format!(
                "camera {path} offers neither MJPEG nor YUYV (it offers: {names})"
            )));
        };

        let mut fmt = sys::Format {
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            fmt: sys::FormatUnion { raw_data: [0; 200] },
        };
        fmt.fmt.pix = sys::PixFormat {
            width: REQUESTED_SIZE.0,
            height: REQUESTED_SIZE.1,
            pixelformat: fourcc,
            field: sys::FIELD_ANY,
            ..Default::default()
        };
        // SAFETY: S_FMT takes a v4l2_format.
        unsafe { ioctl(&fd, sys::S_FMT, &mut fmt) }
            .map_err(|e| fail("cannot set the format", e))?;
        // SAFETY: after S_FMT on a capture type the driver filled in `pix`.
        let pix = unsafe { fmt.fmt.pix };
        if pix.pixelformat != fourcc || pix.width == 0 || pix.height == 0 {
            return Err(SourceError::Unavailable(format!(
                "camera {path}: the driver refused the format it offered"
            )));
        }

        let mut req = sys::RequestBuffers {
            count: BUFFER_COUNT,
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            memory: sys::MEMORY_MMAP,
            ..Default::default()
        };
        // SAFETY: REQBUFS takes a v4l2_requestbuffers.
        unsafe { ioctl(&fd, sys::REQBUFS, &mut req) }
            .map_err(|e| fail("cannot get capture buffers", e))?;
        let mut buffers = Vec::new();
        for index in 0..req.count {
            let mut buf = sys::Buffer {
                index,
                type_: sys::BUF_TYPE_VIDEO_CAPTURE,
                memory: sys::MEMORY_MMAP,
                ..Default::default()
            };
            // SAFETY: QUERYBUF takes a v4l2_buffer.
            unsafe { ioctl(&fd, sys::QUERYBUF, &mut buf) }
                .map_err(|e| fail("cannot query a capture buffer", e))?;
            let len = buf.length as usize;
            // SAFETY: maps the driver's buffer at the offset it gave; checked below.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    mmap_offset(&buf),
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(fail(
                    "cannot map a capture buffer",
                    std::io::Error::last_os_error(),
                ));
            }
            buffers.push(Mapped { ptr, len });
            // SAFETY: QBUF takes the v4l2_buffer QUERYBUF filled in.
            unsafe { ioctl(&fd, sys::QBUF, &mut buf) }
                .map_err(|e| fail("cannot queue a capture buffer", e))?;
        }
        let mut kind = sys::BUF_TYPE_VIDEO_CAPTURE as i32;
        // SAFETY: STREAMON takes the buffer type as an int.
        unsafe { ioctl(&fd, sys::STREAMON, &mut kind) }
            .map_err(|e| fail("cannot start streaming", e))?;
        Ok(Self {
            fd,
            buffers,
            format,
            width: pix.width,
            height: pix.height,
            stride: pix.bytesperline as usize,
        })
    }

    fn formats(fd: &OwnedFd) -> Vec<u32> {
        let mut formats = Vec::new();
        for index in 0..64 {
            let mut desc = sys::FmtDesc {
                index,
                type_: sys::BUF_TYPE_VIDEO_CAPTURE,
                ..Default::default()
            };
            // SAFETY: ENUM_FMT takes a v4l2_fmtdesc; it fails past the last format.
            if unsafe { ioctl(fd, sys::ENUM_FMT, &mut desc) }.is_err() {
                break;
            }
            formats.push(desc.pixelformat);
        }
        formats
    }

    /// Waits up to `wait` for a filled buffer and copies its bytes out, returning early with
    /// `Ok(None)` when `wake` becomes readable or nothing came.
    fn capture(&mut self, wake: &OwnedFd, wait: Duration) -> Result<Option<Vec<u8>>, SourceError> {
        let gone = |why: String| SourceError::Unavailable(format!("camera: {why}"));
        let mut fds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        match poll(&mut fds, wait) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => return Err(gone(e.to_string())),
        }
        if fds[1].revents != 0 {
            return Ok(None);
        }
        if fds[0].revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            return Err(gone("the device went away".into()));
        }
        if fds[0].revents & libc::POLLIN == 0 {
            return Ok(None);
        }
        let mut buf = sys::Buffer {
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            memory: sys::MEMORY_MMAP,
            ..Default::default()
        };
        // SAFETY: DQBUF takes a v4l2_buffer.
        match unsafe { ioctl(&self.fd, sys::DQBUF, &mut buf) } {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
            Err(e) => return Err(gone(e.to_string())),
        }
        let copied = self
            .buffers
            .get(buf.index as usize)
            .ok_or_else(|| gone(format!("the driver returned unknown buffer {}", buf.index)))
            .map(|mapped| {
                let used = (buf.bytesused as usize).min(mapped.len);
                // SAFETY: the driver handed this buffer back and does not write it until QBUF.
                unsafe { std::slice::from_raw_parts(mapped.ptr as *const u8, used) }.to_vec()
            });
        // SAFETY: QBUF takes the v4l2_buffer DQBUF filled in; the buffer goes back to the driver.
        unsafe { ioctl(&self.fd, sys::QBUF, &mut buf) }.map_err(|e| gone(e.to_string()))?;
        copied.map(Some)
    }
}

/// Waits up to `wait` for any of `fds` to be ready. `Ok(false)`: none was (or a signal came).
fn poll(fds: &mut [libc::pollfd], wait: Duration) -> std::io::Result<bool> {
    let millis = wait.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid slice of pollfd for the duration of the call.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    if ready < 0 {
        let err = std::io::Error::last_os_error();
        return if err.raw_os_error() == Some(libc::EINTR) {
            Ok(false)
        } else {
            Err(err)
        };
    }
    Ok(ready > 0)
}

/// A one-item mailbox from a producer thread to an async consumer that keeps the newest item:
/// putting replaces whatever the consumer has not taken yet, so the consumer never sees a frame
/// older than the newest one captured.
struct Latest<T> {
    state: Mutex<LatestState<T>>,
    ready: Notify,
}

struct LatestState<T> {
    item: Option<T>,
    /// The producer is gone: once the item is taken, nothing more comes.
    closed: bool,
}

impl<T> Latest<T> {
    fn new() -> Self {
        Self {
            state: Mutex::new(LatestState {
                item: None,
                closed: false,
            }),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LatestState<T>> {
        // The state stays consistent even if a holder panicked: every change is one assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `item`, returning the one it replaced (which the consumer never saw).
    fn put(&self, item: T) -> Option<T> {
        let replaced = self.lock().item.replace(item);
        // Stores a permit when the consumer is not waiting yet, so the wake-up is not lost.
        self.ready.notify_one();
        replaced
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// The newest item, waiting for one; `None` when the producer closed and nothing is left.
    async fn take(&self) -> Option<T> {
        loop {
            {
                let mut state = self.lock();
                if let Some(item) = state.item.take() {
                    return Some(item);
                }
                if state.closed {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }
}

/// What a capture thread hands over: a frame's bytes, or the error that ended capture.
type Captured = Result<Vec<u8>, SourceError>;

/// A thread that runs `capture` until stopped, putting each frame into a [`Latest`] mailbox.
/// Dropping it wakes the thread (through an eventfd that `capture` polls beside the device) and
/// waits, up to [`JOIN_TIMEOUT`], for it to finish, so whatever the thread owns is released when
/// the drop returns.
struct CaptureThread {
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
    handle: Option<JoinHandle<()>>,
}

impl CaptureThread {
    /// `capture` gets the wake descriptor to poll; it returns `Ok(None)` when it has no frame.
    fn spawn<F>(
        name: String,
        mailbox: Arc<Latest<Captured>>,
        mut capture: F,
    ) -> std::io::Result<Self>
    where
        F: FnMut(&OwnedFd) -> Result<Option<Vec<u8>>, SourceError> + Send + 'static,
    {
        // SAFETY: eventfd has no memory arguments; the result is checked and then owned.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        let stop = Arc::new(AtomicBool::new(false));
        let (stopping, woken) = (Arc::clone(&stop), Arc::clone(&wake));
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                match capture(&woken) {
                    Ok(None) => {}
                    Ok(Some(frame)) => {
                        mailbox.put(Ok(frame));
                    }
                    Err(e) => {
                        mailbox.put(Err(e));
                        break;
                    }
                }
            }
            // `capture` (and the device it owns) is dropped here, before the thread ends.
            drop(capture);
            mailbox.close();
        })?;
        Ok(Self {
            stop,
            wake,
            handle: Some(handle),
        })
    }
}

impl Drop for CaptureThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to an eventfd we own. A failure (the counter
        // is full) still leaves it readable, which is all the thread needs.
        let _ = unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        let Some(handle) = self.handle.take() else {
            return;
        };
        let deadline = Instant::now() + JOIN_TIMEOUT;
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if handle.is_finished() {
            let _ = handle.join();
        } else {
            tracing::warn!(message = "A camera capture thread did not stop in time; leaving it.");
        }
    }
}

/// A V4L2 camera streaming frames.
pub struct V4l2Source {
    path: String,
    /// The newest captured frame's bytes (or the error that ended capture), converted only when
    /// taken.
    frames: Arc<Latest<Captured>>,
    /// How to read those bytes, as negotiated with the driver.
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    /// Owns the device; dropped (stopped and joined) with the source.
    _capture: CaptureThread,
}

impl std::fmt::Debug for V4l2Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2Source")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl V4l2Source {
    /// Opens `/dev/video{device_id}` and starts capturing on a thread of its own. Blocking.
    ///
    /// Returns `Unavailable` naming the device when it is missing, busy or not permitted, and
    /// `Unsupported` when it offers neither MJPEG nor YUYV.
    pub fn open(device_id: u32) -> Result<Self, SourceError> {
        let mut stream = Stream::start(device_id)?;
        let path = device_path(device_id);
        let (format, width, height, stride) =
            (stream.format, stream.width, stream.height, stream.stride);
        let frames = Arc::new(Latest::new());
        // The poll wait only bounds how long a silent camera goes unnoticed by the loop; a stop
        // wakes the thread at once through the eventfd.
        let capture = CaptureThread::spawn(
            format!("v4l2-video{device_id}"),
            Arc::clone(&frames),
            move |wake| stream.capture(wake, Duration::from_millis(500)),
        )
        .map_err(|e| SourceError::Unavailable(format!("camera {path}: no capture thread: {e}")))?;
        Ok(Self {
            path,
            frames,
            format,
            width,
            height,
            stride,
            _capture: capture,
        })
    }
}

#[async_trait]
impl FrameSource for V4l2Source {
    async fn next_frame(&mut self) -> Result<Option<RgbImage>, SourceError> {
        let unavailable = |why: &dyn std::fmt::Display| {
            SourceError::Unavailable(format!("camera {}: {why}", self.path))
        };
        // Damaged frames are skipped, but only until the deadline: a camera sending nothing
        // usable for that long counts as gone, as one sending nothing does.
        let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
        loop {
            let data = match tokio::time::timeout_at(deadline, self.frames.take()).await {
                Ok(Some(Ok(data))) => data,
                Ok(Some(Err(SourceError::Unavailable(why)))) => return Err(unavailable(&why)),
                Ok(Some(Err(other))) => return Err(other),
                Ok(None) => return Err(unavailable(&"capture stopped")),
                Err(_) => {
                    return Err(unavailable(&format!(
                        "no usable frame for {FRAME_TIMEOUT:?}"
                    )));
                }
            };
            let (format, width, height, stride) =
                (self.format, self.width, self.height, self.stride);
            let converted = tokio::task::spawn_blocking(move || {
                convert_frame(format, &data, width, height, stride)
            })
            .await
            .map_err(|e| unavailable(&format!("the frame decoder stopped: {e}")))?;
            match converted {
                Ok(frame) => return Ok(Some(frame)),
                Err(SourceError::Corrupt(error)) => {
                    tracing::warn!(message = "Skipping a camera frame that does not decode.", %error);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_codes_match_the_kernels() {
        // V4L2_PIX_FMT_YUYV and V4L2_PIX_FMT_MJPEG from videodev2.h.
        assert_eq!(sys::PIX_FMT_YUYV, 0x5659_5559);
        assert_eq!(sys::PIX_FMT_MJPEG, 0x4750_4a4d);
    }

    #[test]
    fn driver_strings_end_at_the_first_nul() {
        let mut card = [0u8; 32];
        card[..6].copy_from_slice(b"Webcam");
        assert_eq!(c_string(&card), "Webcam");
        assert_eq!(c_string(b"full"), "full");
    }

    #[test]
    fn mjpeg_frames_decode_to_rgb() {
        let img = image::RgbImage::from_pixel(32, 16, image::Rgb([200, 30, 40]));
        let mut jpeg = std::io::Cursor::new(Vec::new());
        img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        let frame = convert_frame(PixelFormat::Mjpeg, jpeg.get_ref(), 32, 16, 0).unwrap();
        assert_eq!((frame.width(), frame.height()), (32, 16));
        let [r, g, b] = frame.pixel(5, 5);
        assert!(r > 180 && g < 60 && b < 60, "{:?}", frame.pixel(5, 5));
        assert!(matches!(
            convert_frame(PixelFormat::Mjpeg, &jpeg.get_ref()[..40], 32, 16, 0),
            Err(SourceError::Corrupt(_))
        ));
    }

    #[test]
    fn yuyv_frames_convert_with_their_stride_and_short_ones_are_corrupt() {
        // 2x1 white pixels, rows padded to 8 bytes.
        let data = [235, 128, 235, 128, 0, 0, 0, 0, 16, 128, 16, 128];
        let frame = convert_frame(PixelFormat::Yuyv, &data, 2, 2, 8).unwrap();
        assert_eq!(frame.pixel(1, 0), [255, 255, 255]);
        assert_eq!(frame.pixel(0, 1), [0, 0, 0]);
        assert!(matches!(
            convert_frame(PixelFormat::Yuyv, &data[..10], 2, 2, 8),
            Err(SourceError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn the_mailbox_keeps_the_newest_item_and_ends_when_closed() {
        let mailbox = Latest::new();
        assert_eq!(mailbox.put(1), None);
        // The consumer never saw 1: it is replaced, not queued.
        assert_eq!(mailbox.put(2), Some(1));
        assert_eq!(mailbox.take().await, Some(2));

        let mailbox = Arc::new(mailbox);
        let waiting = tokio::spawn({
            let mailbox = Arc::clone(&mailbox);
            async move { mailbox.take().await }
        });
        let producer = Arc::clone(&mailbox);
        std::thread::spawn(move || producer.put(3)).join().unwrap();
        assert_eq!(waiting.await.unwrap(), Some(3));

        mailbox.put(4);
        mailbox.close();
        // What was put before closing is still handed out, then nothing.
        assert_eq!(mailbox.take().await, Some(4));
        assert_eq!(mailbox.take().await, None);
    }

    /// Blocks like a camera with nothing to send, until `wake` is signalled.
    fn sleep_until_woken(wake: &OwnedFd) {
        let mut fds = [libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        assert!(
            poll(&mut fds, Duration::from_secs(60)).unwrap(),
            "not woken"
        );
    }

    #[tokio::test]
    async fn the_capture_thread_hands_over_the_newest_of_the_frames_not_taken() {
        let mailbox = Arc::new(Latest::new());
        let (put_all, all_put) = std::sync::mpsc::channel();
        let mut count = 0u8;
        let _thread =
            CaptureThread::spawn("test-capture".into(), Arc::clone(&mailbox), move |wake| {
                count += 1;
                if count <= 5 {
                    return Ok(Some(vec![count]));
                }
                // Frame 5 is in the mailbox by the time the thread asks for a sixth.
                let _ = put_all.send(());
                sleep_until_woken(wake);
                Ok(None)
            })
            .unwrap();
        all_put.recv().unwrap();
        assert_eq!(mailbox.take().await.unwrap().unwrap(), [5]);
    }

    #[test]
    fn dropping_the_capture_thread_wakes_it_and_waits_until_it_has_let_go() {
        /// Stands for the device: sets its flag when the thread drops it.
        struct Device(Arc<AtomicBool>);
        impl Drop for Device {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let released = Arc::new(AtomicBool::new(false));
        let device = Device(Arc::clone(&released));
        let mailbox = Arc::new(Latest::new());
        let (started, running) = std::sync::mpsc::channel();
        let thread =
            CaptureThread::spawn("test-capture".into(), Arc::clone(&mailbox), move |wake| {
                let _device = &device;
                let _ = started.send(());
                // Without the wake-up this would hold the thread (and the device) for a minute,
                // far past the join bound.
                sleep_until_woken(wake);
                Ok(None)
            })
            .unwrap();
        running.recv().unwrap();
        drop(thread);
        assert!(
            released.load(Ordering::SeqCst),
            "the device outlived the drop"
        );
        assert!(
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(mailbox.take())
                .is_none(),
            "the mailbox is closed"
        );
    }

    #[tokio::test]
    async fn an_error_ends_capture_and_is_handed_over() {
        let mailbox = Arc::new(Latest::new());
        let _thread = CaptureThread::spawn("test-capture".into(), Arc::clone(&mailbox), |_| {
            Err(SourceError::Unavailable("unplugged".into()))
        })
        .unwrap();
        match mailbox.take().await {
            Some(Err(SourceError::Unavailable(why))) => assert_eq!(why, "unplugged"),
            other => panic!("expected the error, got {other:?}"),
        }
        assert!(mailbox.take().await.is_none());
    }
}
