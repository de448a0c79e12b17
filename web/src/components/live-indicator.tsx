import type { LiveStatus } from "../queries/events.js";

const liveLabel: Record<LiveStatus, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
};

/** Whether the page is receiving changes as they happen. */
export function LiveIndicator({ status }: { status: LiveStatus }) {
  return (
    <span className={`live live-${status}`} role="status" title="Updates arrive as they happen">
      <span className="live-dot" aria-hidden="true" />
      {liveLabel[status]}
    </span>
  );
}
