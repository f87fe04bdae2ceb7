/** A polite "Loading…" with a spinner, announced to screen readers. */

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <p role="status" aria-live="polite" className="muted">
      <span className="spinner" aria-hidden="true" /> {label}
    </p>
  );
}
