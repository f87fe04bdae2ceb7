/**
 * An error as a person reads it: `role="alert"` with the sentence for the
 * API's error code (src/api/errors.ts describeError), an optional "Try again"
 * button, and nothing at all when there is no error. Field errors are shown
 * by each {@link Field} beside its input; pass `describe(error).fields` there.
 */

import { describeError } from "../api/errors";

/** What a page's own alert says when its request got no answer. */
export const NO_ANSWER = "No answer came back. Please try again.";

export interface ErrorMessageProps {
  error: unknown;
  /** Offered as a "Try again" button when the error may pass. */
  onRetry?: () => void;
  /** A prefix naming what failed, e.g. "Could not load the catalog." */
  title?: string;
}

export function ErrorMessage({ error, onRetry, title }: ErrorMessageProps) {
  if (error === null || error === undefined) return null;
  const description = describeError(error);
  const { retryable } = description;
  // A lost connection is the banner's to announce (role="alert", "offline" /
  // "connection lost", once for the page): here only this request's outcome,
  // so the page never shows two connection alerts.
  const message = description.network ? NO_ANSWER : description.message;
  return (
    <div className="alert" role="alert">
      <p>
        {title ? <strong>{title} </strong> : null}
        {message}
      </p>
      {onRetry && retryable ? (
        <button type="button" className="button secondary" onClick={onRetry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}
