//! Intel AMX tiles for the bf16 GEMMs: where the CPU has them (Xeon from Sapphire Rapids on),
//! one `tdpbf16ps` multiplies a 16 x 32 bf16 tile by a 32 x 16 one into 16 x 16 f32 sums, 16,384
//! FLOPs in about 16 cycles, some eight times the AVX-512 BF16 rate of a core. [`super::bf16`]
//! sends its row blocks here when [`ready`] says so and keeps AVX-512 for the rest (rows past
//! the last whole block of 16, and the pairs of input channels past the last whole step of 32).
//!
//! The weights need no packing of their own: [`super::bf16::PackedBf16`]'s panels of 32 columns,
//! each pair of input channels holding the 32 columns' two values side by side, are already what
//! a B tile reads (16 pair-rows of 16 columns' pairs, one row every 128 bytes); the second B tile
//! of a panel starts 64 bytes on.
//!
//! The tile instructions are written as inline assembly: Rust's AMX intrinsics are not stable.
//! Linux hands out the tile state only to a process that asks for it (`arch_prctl`), which
//! [`ready`] does once. `VISPROMPT_NO_AMX=1` turns the tiles off, to compare the two kernels.

use std::sync::OnceLock;

/// Whether this process can use the AMX bf16 tiles (checked and requested once).
pub(crate) fn ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        std::env::var_os("VISPROMPT_NO_AMX").is_none_or(|v| v.is_empty() || v == "0")
            && cpu_has_amx_bf16()
            && os_grants_tiles()
    })
}

/// CPUID leaf 7: AMX-BF16 (EDX bit 22) and AMX-TILE (bit 24).
pub(crate) fn cpu_has_amx_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__cpuid_count, __get_cpuid_max};
        // Leaf 7 only where the CPU reports it.
        if __get_cpuid_max(0).0 < 7 {
            return false;
        }
        let edx = __cpuid_count(7, 0).edx;
        edx & (1 << 22) != 0 && edx & (1 << 24) != 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Asks Linux for the tile data state (`ARCH_REQ_XCOMP_PERM`, `XFEATURE_XTILEDATA`): without it
/// the first tile instruction faults. Permission is process-wide.
fn os_grants_tiles() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a plain system call with two integer arguments; it only changes which
        // register state this process may use.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// Rows of a tile, and bytes per tile row.
pub(crate) const TILE_ROWS: usize = 16;
/// bf16 values of one input-channel step (one A tile row, 64 bytes).
pub(crate) const K_STEP: usize = 32;

#[cfg(target_arch = "x86_64")]
pub(crate) use kernel::{Tiles, block, zero_sums};

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::asm;
    use std::arch::x86_64::*;

    use super::{K_STEP, TILE_ROWS};

    /// The tile configuration of the kernels: all eight tiles 16 rows of 64 bytes (tmm0-3: the
    /// f32 sums of a 32 x 32 block, tmm4-5: the two A tiles, tmm6-7: the two B tiles).
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    const CONFIG: Config = {
        let mut c = [0u8; 64];
        c[0] = 1; // palette 1
        let mut t = 0;
        while t < 8 {
            c[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
            c[48 + t] = TILE_ROWS as u8;
            t += 1;
        }
        Config(c)
    };

    /// The tiles configured on this thread for the kernels' shapes, released on drop.
    pub(crate) struct Tiles(());

    impl Tiles {
        /// # Safety
        /// [`super::ready`] must have returned true in this process.
        pub(crate) unsafe fn configure() -> Self {
            // SAFETY: the caller checked that the CPU has AMX and the OS granted the state.
            unsafe { asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack)) };
            Tiles(())
        }
    }

    impl Drop for Tiles {
        fn drop(&mut self) {
            // SAFETY: `configure` ran on this thread (a `Tiles` exists only through it).
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        }
    }

    /// `out[rows × cols] += a[rows × 32·steps] · B`, `rows` 16 or 32, for one weight panel
    /// (`panel`: the first pair-row of 32 columns' pairs, 128 bytes each) over its first
    /// `16 · steps` pair-rows. `a` holds `rows` bf16 rows of `kp` values; `out` rows are `n`
    /// f32 apart and `cols` ≤ 32 of them belong to the panel.
    ///
    /// # Safety
    /// A live [`Tiles`] on this thread; `a` readable for `rows` rows of `kp ≥ 32·steps`
    /// values, `panel` for `16·steps` pair-rows, `out` writable for `rows` rows of `cols`
    /// values, no other thread writing them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn block(
        _tiles: &Tiles,
        panel: *const u16,
        a: *const u16,
        kp: usize,
        steps: usize,
        out: *mut f32,
        n: usize,
        rows: usize,
        cols: usize,
    ) {
        debug_assert!(rows == 16 || rows == 32);
        let a_stride = kp * 2;
        let b_stride = 128usize;
        // Whole blocks add onto the output in place; a panel's last columns go through a
        // buffer, masked.
        let direct = cols == 32;
        // Not zeroed: the tiles' stores write every row that is read back (this runs once per
        // block of every product, and zeroing 4 KB each time showed in profiles).
        let mut buffer = std::mem::MaybeUninit::<Buffer>::uninit();
        let (c, c_stride) = if direct {
            (out, n * 4)
        } else {
            (buffer.as_mut_ptr().cast::<f32>(), 32 * 4)
        };
        // SAFETY (all asm): the pointers and strides cover what the caller guarantees; the
        // tile registers are configured by `_tiles` and used by nothing else on this thread.
        unsafe {
            if direct {
                asm!(
                    "tileloadd tmm0, [{c} + {s}*1]",
                    "tileloadd tmm1, [{c1} + {s}*1]",
                    c = in(reg) c, c1 = in(reg) c.add(16), s = in(reg) c_stride,
                    options(nostack, readonly),
                );
                if rows == 32 {
                    asm!(
                        "tileloadd tmm2, [{c} + {s}*1]",
                        "tileloadd tmm3, [{c1} + {s}*1]",
                        c = in(reg) c.add(16 * n), c1 = in(reg) c.add(16 * n + 16),
                        s = in(reg) c_stride,
                        options(nostack, readonly),
                    );
                }
            } else {
                zero_sums(_tiles);
            }
            for step in 0..steps {
                let ap = a.add(step * K_STEP);
                let bp = panel.add(step * TILE_ROWS * 64);
                if rows == 32 {
                    asm!(
                        "tileloadd tmm4, [{a0} + {sa}*1]",
                        "tileloadd tmm6, [{b0} + {sb}*1]",
                        "tileloadd tmm7, [{b1} + {sb}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tileloadd tmm5, [{a1} + {sa}*1]",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        a0 = in(reg) ap, a1 = in(reg) ap.add(TILE_ROWS * kp),
                        b0 = in(reg) bp, b1 = in(reg) bp.add(32),
                        sa = in(reg) a_stride, sb = in(reg) b_stride,
                        options(nostack, readonly),
                    );
                } else {
                    asm!(
                        "tileloadd tmm4, [{a0} + {sa}*1]",
                        "tileloadd tmm6, [{b0} + {sb}*1]",
                        "tileloadd tmm7, [{b1} + {sb}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        a0 = in(reg) ap,
                        b0 = in(reg) bp, b1 = in(reg) bp.add(32),
                        sa = in(reg) a_stride, sb = in(reg) b_stride,
                        options(nostack, readonly),
                    );
                }
            }
            asm!(
                "tilestored [{c} + {s}*1], tmm0",
                "tilestored [{c1} + {s}*1], tmm1",
                c = in(reg) c, c1 = in(reg) c.add(16), s = in(reg) c_stride,
                options(nostack),
            );
            if rows == 32 {
                let c2 = if direct {
                    c.add(16 * n)
                } else {
                    c.add(16 * 32)
                };
                asm!(
                    "tilestored [{c} + {s}*1], tmm2",
                    "tilestored [{c1} + {s}*1], tmm3",
                    c = in(reg) c2, c1 = in(reg) c2.add(16), s = in(reg) c_stride,
                    options(nostack),
                );
            }
            if !direct {
                // SAFETY: the stores above wrote the buffer's first `rows` rows of 32.
                let written = std::slice::from_raw_parts(c.cast_const(), rows * 32);
                add_masked(written, out, n, rows, cols);
            }
        }
    }

    /// Zeroes the four sum tiles (tmm0-3).
    ///
    /// # Safety
    /// A live [`Tiles`] on this thread.
    pub(crate) unsafe fn zero_sums(_tiles: &Tiles) {
        // SAFETY: the tiles are configured on this thread (`_tiles`).
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            )
        };
    }

    #[repr(C, align(64))]
    struct Buffer([f32; 32 * 32]);

    /// `out[r][..cols] += buffer[r][..cols]` for `rows` rows (of 32 values in `buffer`).
    #[target_feature(enable = "avx512f")]
    unsafe fn add_masked(buffer: &[f32], out: *mut f32, n: usize, rows: usize, cols: usize) {
        assert!(buffer.len() >= rows * 32);
        let masks = [
            ((1u32 << cols.min(16)) - 1) as __mmask16,
            ((1u32 << cols.saturating_sub(16)) - 1) as __mmask16,
        ];
        for r in 0..rows {
            for (h, &mask) in masks.iter().enumerate() {
                // SAFETY: row r's first `cols` values are the caller's to write.
                unsafe {
                    let dst = out.add(r * n + 16 * h);
                    let cur = _mm512_maskz_loadu_ps(mask, dst);
                    let add = _mm512_loadu_ps(buffer.as_ptr().add(r * 32 + 16 * h));
                    _mm512_mask_storeu_ps(dst, mask, _mm512_add_ps(cur, add));
                }
            }
        }
    }
}
