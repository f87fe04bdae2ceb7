/**
 * `/profile`: name, phone and postal address (`PATCH /v1/users/me`, field
 * errors beside their fields), the email verification link sent again
 * (`POST /v1/users/me/email-verification`), and the phone confirmed with the
 * texted six-digit code (`POST /v1/users/me/phone-verification`).
 */

import { useEffect, useState, type FormEvent } from "react";
import { api } from "../api/client";
import { describeError, fieldError } from "../api/errors";
import { ErrorMessage } from "../components/ErrorMessage";
import { Field } from "../components/Field";
import { Loading } from "../components/Loading";
import { RequireSignIn } from "../components/RequireSignIn";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";

interface Address {
  line1: string;
  line2: string | null;
  city: string;
  postal_code: string;
  country: string;
}

interface Me {
  id: string;
  email: string;
  name: string | null;
  phone: string | null;
  address: Address | null;
  roles: string[];
  email_verified: boolean;
  phone_verified: boolean;
}

interface FormState {
  name: string;
  phone: string;
  line1: string;
  line2: string;
  city: string;
  postal_code: string;
  country: string;
}

function formOf(me: Me): FormState {
  return {
    name: me.name ?? "",
    phone: me.phone ?? "",
    line1: me.address?.line1 ?? "",
    line2: me.address?.line2 ?? "",
    city: me.address?.city ?? "",
    postal_code: me.address?.postal_code ?? "",
    country: me.address?.country ?? "",
  };
}

/** The PATCH body: only what changed; an emptied phone or address is removed (null). */
export function profileChanges(me: Me, form: FormState): Record<string, unknown> {
  const changes: Record<string, unknown> = {};
  const name = form.name.trim();
  if (name && name !== (me.name ?? "")) changes.name = name;
  const phone = form.phone.replace(/[\s()-]/g, "");
  if (phone !== (me.phone ?? "")) changes.phone = phone || null;
  const addressFields = [form.line1, form.line2, form.city, form.postal_code, form.country].map((v) => v.trim());
  const empty = addressFields.every((value) => value === "");
  const address = empty
    ? null
    : {
        line1: form.line1.trim(),
        line2: form.line2.trim() || null,
        city: form.city.trim(),
        postal_code: form.postal_code.trim(),
        country: form.country.trim().toUpperCase(),
      };
  if (JSON.stringify(address) !== JSON.stringify(me.address ?? null)) changes.address = address;
  return changes;
}

export function ProfilePage() {
  usePageTitle("Profile");
  return (
    <RequireSignIn title="Profile">
      <Profile />
    </RequireSignIn>
  );
}

function Profile() {
  const me = useApi((signal) => api.get<Me>("/v1/users/me", { signal }), []);
  if (me.error && !me.value) {
    return (
      <section>
        <h1>Profile</h1>
        <ErrorMessage error={me.error} title="Could not load your profile." onRetry={me.reload} />
      </section>
    );
  }
  if (!me.value) return <Loading label="Loading your profile…" />;
  return <ProfileForms me={me.value} onChange={me.setValue} />;
}

function ProfileForms({ me, onChange }: { me: Me; onChange: (me: Me) => void }) {
  const [form, setForm] = useState<FormState>(() => formOf(me));
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);

  useEffect(() => setForm(formOf(me)), [me]);

  const fields = error ? describeError(error).fields : {};
  const set = (key: keyof FormState) => (event: { target: { value: string } }) =>
    setForm((current) => ({ ...current, [key]: event.target.value }));

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    const changes = profileChanges(me, form);
    setSaved(null);
    setError(null);
    if (Object.keys(changes).length === 0) {
      setSaved("Nothing to save: no field changed.");
      return;
    }
    setSaving(true);
    try {
      const updated = await api.patch<Me>("/v1/users/me", { body: changes });
      onChange(updated);
      setSaved(
        "phone" in changes && updated.phone && !updated.phone_verified
          ? "Saved. We texted a code to your phone: enter it below to confirm the number."
          : "Your profile was saved.",
      );
    } catch (failure) {
      setError(failure);
    } finally {
      setSaving(false);
    }
  }

  return (
    <section aria-labelledby="profile-heading" className="stack">
      <h1 id="profile-heading">Profile</h1>
      <EmailCard me={me} onChange={onChange} />
      <form className="card" onSubmit={onSubmit} noValidate>
        <h2 id="details-heading">Your details</h2>
        <ErrorMessage error={error} title="Your profile was not saved." />
        {saved ? (
          <p className="notice" role="status">
            {saved}
          </p>
        ) : null}
        <Field label="Name" error={fieldError(fields, "name")}>
          {(props) => <input {...props} autoComplete="name" value={form.name} maxLength={200} onChange={set("name")} />}
        </Field>
        <Field
          label="Phone"
          hint="International format, e.g. +4915112345678. Leave empty to remove it."
          error={fieldError(fields, "phone")}
        >
          {(props) => <input {...props} type="tel" autoComplete="tel" value={form.phone} onChange={set("phone")} />}
        </Field>
        <fieldset className="field">
          <legend className="label">Postal address</legend>
          <Field label="Address line 1" error={fieldError(fields, "address.line1") ?? (fields.address || undefined)}>
            {(props) => <input {...props} autoComplete="address-line1" value={form.line1} onChange={set("line1")} />}
          </Field>
          <Field label="Address line 2" error={fieldError(fields, "address.line2")}>
            {(props) => <input {...props} autoComplete="address-line2" value={form.line2} onChange={set("line2")} />}
          </Field>
          <Field label="City" error={fieldError(fields, "address.city")}>
            {(props) => <input {...props} autoComplete="address-level2" value={form.city} onChange={set("city")} />}
          </Field>
          <Field label="Postal code" error={fieldError(fields, "address.postal_code")}>
            {(props) => <input {...props} autoComplete="postal-code" value={form.postal_code} onChange={set("postal_code")} />}
          </Field>
          <Field label="Country" hint="Two-letter code, e.g. DE" error={fieldError(fields, "address.country")}>
            {(props) => (
              <input {...props} autoComplete="country" value={form.country} maxLength={2} onChange={set("country")} />
            )}
          </Field>
        </fieldset>
        <button type="submit" className="button" disabled={saving}>
          Save profile
        </button>
      </form>
      {me.phone && !me.phone_verified ? <PhoneCard phone={me.phone} onChange={onChange} /> : null}
    </section>
  );
}

function EmailCard({ me, onChange }: { me: Me; onChange: (me: Me) => void }) {
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [sent, setSent] = useState(false);

  async function resend() {
    setSending(true);
    setError(null);
    try {
      onChange(await api.post<Me>("/v1/users/me/email-verification"));
      setSent(true);
    } catch (failure) {
      setError(failure);
    } finally {
      setSending(false);
    }
  }

  return (
    <div className="card">
      <h2>Contact</h2>
      <p>
        {me.email}{" "}
        <span className={`badge ${me.email_verified ? "ok" : "wait"}`}>{me.email_verified ? "confirmed" : "not confirmed"}</span>
      </p>
      {me.phone ? (
        <p>
          Phone {me.phone}{" "}
          <span className={`badge ${me.phone_verified ? "ok" : "wait"}`}>{me.phone_verified ? "confirmed" : "not confirmed"}</span>
        </p>
      ) : null}
      {!me.email_verified ? (
        <>
          <p className="muted">Until you confirm your address, we send you no other email.</p>
          <ErrorMessage error={error} title="The link was not sent." />
          {sent ? (
            <p className="notice" role="status">
              We sent a new confirmation link to {me.email}. Earlier links no longer work.
            </p>
          ) : null}
          <button type="button" className="button secondary" onClick={() => void resend()} disabled={sending}>
            Resend verification email
          </button>
        </>
      ) : null}
    </div>
  );
}

function PhoneCard({ phone, onChange }: { phone: string; onChange: (me: Me) => void }) {
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [resent, setResent] = useState(false);
  const fields = error ? describeError(error).fields : {};

  async function resend() {
    setBusy(true);
    setError(null);
    setResent(false);
    try {
      // The same unconfirmed number again: the API texts a new code.
      onChange(await api.patch<Me>("/v1/users/me", { body: { phone } }));
      setResent(true);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  }

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onChange(await api.post<Me>("/v1/users/me/phone-verification", { body: { code: code.trim() } }));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="card" onSubmit={onSubmit} noValidate>
      <h2 id="phone-heading">Confirm your phone</h2>
      <p className="muted">Enter the six-digit code we texted to {phone}.</p>
      <ErrorMessage error={error} title="The phone was not confirmed." />
      {resent ? (
        <p className="notice" role="status">
          We texted a new code to {phone}. Earlier codes no longer work.
        </p>
      ) : null}
      <Field label="Verification code" error={fieldError(fields, "code")}>
        {(props) => (
          <input
            {...props}
            inputMode="numeric"
            autoComplete="one-time-code"
            pattern="[0-9]{6}"
            maxLength={6}
            value={code}
            onChange={(event) => setCode(event.target.value)}
          />
        )}
      </Field>
      <div className="row">
        <button type="submit" className="button" disabled={busy}>
          Confirm phone
        </button>
        <button type="button" className="button secondary" disabled={busy} onClick={() => void resend()}>
          Text me a new code
        </button>
      </div>
    </form>
  );
}
