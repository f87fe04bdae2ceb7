/**
 * A labelled form field (`.field`): the label, the control, an optional hint,
 * and its error below it, tied to the control by `aria-describedby` and
 * `aria-invalid`, as the API's validation errors are shown "next to their
 * fields".
 *
 * ```tsx
 * <Field label="Name" error={fieldError(fields, "name")}>
 *   {(props) => <input {...props} value={name} onChange={...} />}
 * </Field>
 * ```
 */

import { useId, type ReactNode } from "react";

export interface ControlProps {
  id: string;
  "aria-describedby"?: string;
  "aria-invalid"?: true;
}

export interface FieldProps {
  label: string;
  error?: string | null;
  hint?: string;
  /** Renders the control with the id and ARIA attributes it must carry. */
  children: (props: ControlProps) => ReactNode;
}

export function Field({ label, error, hint, children }: FieldProps) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint ? hintId : null, error ? errorId : null].filter(Boolean).join(" ");
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children({
        id,
        ...(describedBy ? { "aria-describedby": describedBy } : {}),
        ...(error ? { "aria-invalid": true as const } : {}),
      })}
      {hint ? (
        <span className="hint" id={hintId}>
          {hint}
        </span>
      ) : null}
      {error ? (
        <p className="field-error" id={errorId}>
          {fieldSentence(label, error)}
        </p>
      ) : null}
    </div>
  );
}

/**
 * The API's field errors are fragments ("must be an E.164 phone number",
 * "is wrong"): prefixed with the field's label they read as a sentence.
 */
export function fieldSentence(label: string, error: string): string {
  return /^[a-z]/.test(error) ? `${label} ${error}` : error;
}
