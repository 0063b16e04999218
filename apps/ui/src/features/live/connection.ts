// One WebRTC live-view session with the server: a receive-only video transceiver and a data
// channel named `predictions` that the browser opens (the server answers on it), a complete
// non-trickle offer posted to /projects/{id}/offer, and a hang-up with DELETE /offer/{webrtc_id}.
import { api, call } from "../../api/client";

export type LiveState = "idle" | "connecting" | "connected" | "disconnected" | "failed" | "closed";

export interface LiveCallbacks {
  onState: (state: LiveState, detail?: string) => void;
  onStream: (stream: MediaStream) => void;
  onMessage: (text: string, receivedAt: number) => void;
  onChannelState?: (state: RTCDataChannelState) => void;
}

/** How long to wait for ICE gathering before posting what was gathered so far. */
const GATHERING_TIMEOUT_MS = 5000;

function newSessionId(): string {
  const random = crypto.getRandomValues(new Uint8Array(12));
  return "ui-" + Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Resolves when ICE gathering completes or after the timeout (a slow STUN must not hang us). */
function gatheringComplete(pc: RTCPeerConnection, timeoutMs: number): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class LiveConnection {
  readonly webrtcId = newSessionId();
  pc: RTCPeerConnection | null = null;
  private closed = false;

  constructor(
    private readonly projectId: string,
    private readonly callbacks: LiveCallbacks,
  ) {}

  async start(): Promise<void> {
    this.callbacks.onState("connecting");
    const config = await call(api.GET("/api/v1/system/webrtc/config"));
    const iceServers: RTCIceServer[] = config.iceServers.map((server) => ({
      urls: server.urls,
      username: server.username ?? undefined,
      credential: server.credential ?? undefined,
    }));
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    const channel = pc.createDataChannel("predictions");
    channel.onmessage = (event) => {
      const received = Date.now();
      if (typeof event.data === "string") this.callbacks.onMessage(event.data, received);
      else void new Blob([event.data]).text().then((text) => this.callbacks.onMessage(text, received));
    };
    const reportChannel = () => this.callbacks.onChannelState?.(channel.readyState);
    channel.onopen = reportChannel;
    channel.onclose = reportChannel;
    pc.ontrack = (event) => {
      this.callbacks.onStream(event.streams[0] ?? new MediaStream([event.track]));
    };
    pc.onconnectionstatechange = () => {
      if (this.closed) return;
      const state = pc.connectionState;
      if (state === "connected" || state === "disconnected" || state === "failed" || state === "closed") {
        this.callbacks.onState(state);
      }
    };

    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc, GATHERING_TIMEOUT_MS);
    if (this.closed) return;
    const offer = pc.localDescription;
    if (!offer) throw new Error("The browser made no offer.");
    const answer = await call(
      api.POST("/api/v1/projects/{project_id}/offer", {
        params: { path: { project_id: this.projectId } },
        body: { webrtc_id: this.webrtcId, sdp: offer.sdp, type: "offer" },
      }),
    );
    if (this.closed) return;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  }

  /** Hangs up: tells the server (best effort, it also notices a closed connection) and closes. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pc?.close();
    this.callbacks.onState("closed");
    try {
      await call(
        api.DELETE("/api/v1/projects/{project_id}/offer/{webrtc_id}", {
          params: { path: { project_id: this.projectId, webrtc_id: this.webrtcId } },
        }),
      );
    } catch {
      // The session may already be gone on the server (failed, replaced, restarted).
    }
  }
}
