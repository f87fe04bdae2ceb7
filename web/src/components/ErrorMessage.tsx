/**
 * An error as a person reads it: `role="alert"` with the sentence for the
 * API's error code (src/api/errors.ts describeError), an optional "Try again"
 * button, and nothing at all when there is no error. Field errors are shown
 * by each {@link Field} beside its input; pass `describe(error).fields` there.
 */

import { describeError } from "../api/errors";

export interface ErrorMessageProps {
  error: unknown;
  /** Offered as a "Try again" button when the error may pass. */
  onRetry?: () => void;
  /** A prefix naming what failed, e.g. "Could not load the catalog." */
  title?: string;
}

export function ErrorMessage({ error, onRetry, title }: ErrorMessageProps) {
  if (error === null || error === undefined) return null;
  const { message, retryable } = describeError(error);
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
