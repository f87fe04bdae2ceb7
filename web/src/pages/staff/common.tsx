/**
 * Pieces every back-office page uses: the scope gate ({@link RequireScope}),
 * the page frame with its way back to the index ({@link StaffPage}), a
 * two-step confirmation for actions that cannot be undone
 * ({@link ConfirmAction}), a polite success notice and the breaker/status
 * badges.
 */

import { useEffect, useRef, useState, type ReactNode } from "react";
import { Link } from "react-router";
import { useAuth } from "../../auth";
import { usePageTitle } from "../../lib/usePageTitle";
import { breakerKind, breakerText } from "./display";
import { missingScope, missingScopeMessage } from "./sections";
import "./staff.css";

/**
 * Renders `children` only when the token holds every scope in `scope`;
 * otherwise a heading and "You need the X permission", so the page never
 * calls the API without it.
 */
export function RequireScope({
  scope,
  title,
  children,
}: {
  scope: string | readonly string[];
  title: string;
  children: ReactNode;
}) {
  const auth = useAuth();
  const missing = missingScope(scope, auth.scopes);
  if (missing === null) return <>{children}</>;
  return (
    <StaffPage title={title}>
      <div className="alert" role="alert">
        <p>{missingScopeMessage(missing)}</p>
      </div>
    </StaffPage>
  );
}

/** A back-office page: a link back to the index, its heading, its content. */
export function StaffPage({
  title,
  children,
  back = { to: "/staff", label: "Back office" },
  actions,
}: {
  /** The heading, and the document's title ("Products · Agora"). */
  title: string;
  children: ReactNode;
  back?: { to: string; label: string } | null;
  actions?: ReactNode;
}) {
  usePageTitle(title);
  return (
    <section className="staff-page">
      {back ? (
        <nav aria-label="Breadcrumb" className="staff-breadcrumb">
          <Link to={back.to}>
            <span aria-hidden="true">← </span>
            {back.label}
          </Link>
        </nav>
      ) : null}
      <div className="staff-title">
        <h1>{title}</h1>
        {actions ? <div className="row">{actions}</div> : null}
      </div>
      {children}
    </section>
  );
}

/**
 * An action that asks first: the button shows `question` with "Confirm" and
 * "Cancel" (focus moves to "Confirm"; Escape or "Cancel" goes back). While
 * `onConfirm` runs, the buttons are disabled and say so.
 */
export function ConfirmAction({
  label,
  confirmLabel,
  question,
  onConfirm,
  danger = false,
  disabled = false,
  ariaLabel,
}: {
  /** The first button's accessible name, e.g. "Replay 3f2a9c1d". */
  label: string;
  /** The confirming button's name, e.g. "Confirm replay". */
  confirmLabel: string;
  question: ReactNode;
  onConfirm: () => Promise<unknown>;
  danger?: boolean;
  disabled?: boolean;
  /** A fuller accessible name for the first button when its text is not unique on the page. */
  ariaLabel?: string;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const confirmRef = useRef<HTMLButtonElement>(null);
  const openerRef = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    if (asking) confirmRef.current?.focus();
  }, [asking]);

  const cancel = () => {
    setAsking(false);
    queueMicrotask(() => openerRef.current?.focus());
  };

  if (!asking) {
    return (
      <button
        ref={openerRef}
        type="button"
        className={danger ? "button danger" : "button secondary"}
        disabled={disabled}
        aria-label={ariaLabel}
        onClick={() => setAsking(true)}
      >
        {label}
      </button>
    );
  }
  return (
    <div
      className="confirm"
      role="group"
      aria-label={confirmLabel}
      onKeyDown={(event) => {
        if (event.key === "Escape" && !busy) cancel();
      }}
    >
      <p>{question}</p>
      <div className="row">
        <button
          ref={confirmRef}
          type="button"
          className={danger ? "button danger" : "button"}
          disabled={busy}
          aria-busy={busy || undefined}
          onClick={() => {
            setBusy(true);
            // onConfirm shows its own errors; a rejection only ends the busy state.
            onConfirm()
              .catch(() => undefined)
              .finally(() => {
                setBusy(false);
                setAsking(false);
              });
          }}
        >
          {busy ? "Working…" : confirmLabel}
        </button>
        <button type="button" className="button secondary" disabled={busy} onClick={cancel}>
          Cancel
        </button>
      </div>
    </div>
  );
}

/** A success message, announced politely (`role="status"`). */
export function Notice({ message }: { message: string | null }) {
  return (
    <div role="status" aria-live="polite" className={message ? "notice" : "visually-hidden"}>
      {message ?? ""}
    </div>
  );
}

/** The state of a circuit breaker, in words and colour. */
export function BreakerBadge({ state }: { state: string }) {
  return <span className={`badge ${breakerKind(state)}`}>Breaker {breakerText(state)}</span>;
}

/** A status word (active/inactive, succeeded/failed...) as a badge. */
export function StatusBadge({ status }: { status: string }) {
  const kind = GOOD.has(status) ? "ok" : BAD.has(status) ? "bad" : "wait";
  return <span className={`badge ${kind}`}>{status.replace(/_/g, " ")}</span>;
}

const GOOD = new Set(["active", "succeeded", "won", "closed", "ok"]);
const BAD = new Set(["inactive", "failed", "lost", "open", "voided", "unreachable"]);
