/**
 * Whether the app can reach Agora: the browser's online/offline events plus
 * what requests see. A request that got no answer marks the connection lost;
 * the next answer (or the browser coming back online and a probe answering)
 * marks it back. The ConnectionBanner shows the state; nothing else needs to.
 */

export type ConnectionState = "online" | "offline" | "lost";

type Listener = () => void;

export class ConnectionMonitor {
  private state: ConnectionState = "online";
  private listeners = new Set<Listener>();

  /** The current state: "offline" (the browser says so), "lost" (requests fail), or "online". */
  get current(): ConnectionState {
    return this.state;
  }

  /** useSyncExternalStore's subscribe. */
  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): ConnectionState => this.state;

  /** A request got no answer. */
  reportFailure(): void {
    if (this.state === "online") this.set("lost");
  }

  /** A request got an answer (any status): the server is reachable. */
  reportSuccess(): void {
    if (this.state !== "online") this.set("online");
  }

  /** The browser went offline or online. */
  setBrowserOnline(online: boolean): void {
    this.set(online ? "online" : "offline");
  }

  private set(state: ConnectionState): void {
    if (state === this.state) return;
    this.state = state;
    for (const listener of [...this.listeners]) listener();
  }
}

/** The app's one monitor. */
export const connection = new ConnectionMonitor();
