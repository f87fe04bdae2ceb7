/**
 * /staff/dead-letters: the events the services' handlers failed on for good
 * (`GET /v1/ops/dead-letters`, ops:read), one inspected with its event body
 * as formatted JSON (`GET /v1/ops/dead-letters/<service>/<event_id>`), and,
 * with ops:write, replayed (`POST .../replay`) or discarded (`DELETE`), each
 * after a confirmation step. Services that could not answer are named.
 */

import { useEffect, useRef, useState } from "react";
import { useSearchParams } from "react-router";
import { api, ApiError } from "../../api/client";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Loading } from "../../components/Loading";
import { formatDate, shortId } from "../../lib/format";
import { useApi } from "../../lib/useApi";
import { useAuth } from "../../auth";
import { ConfirmAction, Notice, RequireScope, StaffPage } from "./common";
import { prettyJson } from "./display";
import { missingScopeMessage } from "./sections";

/** services/chassis/schemas.py DEAD_LETTER_SERVICES. */
export const DEAD_LETTER_SERVICES = ["auth", "inventory", "orders", "billing", "notifications"] as const;

export interface DeadLetter {
  service: string;
  event_id: string;
  type: string | null;
  queue: string | null;
  attempts: number | null;
  error: string | null;
  failed_at: string | null;
}

export interface DeadLetterDetail extends DeadLetter {
  event: unknown;
  headers?: Record<string, unknown>;
}

interface DeadLetterList {
  items: DeadLetter[];
  unavailable?: string[];
}

export function DeadLettersPage() {
  return (
    <RequireScope scope="ops:read" title="Dead letters">
      <DeadLetters />
    </RequireScope>
  );
}

function letterPath(letter: { service: string; event_id: string }): string {
  return `/v1/ops/dead-letters/${encodeURIComponent(letter.service)}/${encodeURIComponent(letter.event_id)}`;
}

function DeadLetters() {
  const [params, setParams] = useSearchParams();
  const service = params.get("service") ?? "";
  const list = useApi(
    (signal) => api.get<DeadLetterList>("/v1/ops/dead-letters", { query: { service }, signal }),
    [service],
  );
  const [selected, setSelected] = useState<DeadLetter | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const done = (message: string) => {
    setSelected(null);
    setNotice(message);
    list.reload();
  };

  const items = list.value?.items ?? [];
  const unavailable = list.value?.unavailable ?? [];

  return (
    <StaffPage
      title="Dead letters"
      actions={
        <button
          type="button"
          className="button secondary"
          onClick={list.reload}
          aria-busy={list.loading || undefined}
        >
          {list.loading ? <span className="spinner" aria-hidden="true" /> : null}
          Refresh
        </button>
      }
    >
      <p className="muted">
        Events a service failed to handle on every attempt. Fix the cause, then replay them; discard those
        that should never be handled.
      </p>
      <Notice message={notice} />
      <div className="field staff-filter">
        <label htmlFor="staff-dead-letter-service">Service</label>
        <select
          id="staff-dead-letter-service"
          value={service}
          onChange={(event) => {
            setSelected(null);
            setParams(event.target.value ? { service: event.target.value } : {});
          }}
        >
          <option value="">All services</option>
          {DEAD_LETTER_SERVICES.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
      </div>
      {list.error ? (
        <ErrorMessage error={list.error} title="Could not load the dead letters." onRetry={list.reload} />
      ) : null}
      {unavailable.length > 0 ? (
        <div className="alert" role="alert">
          <p>
            Could not read the dead letters of {unavailable.join(", ")} now (the service is down or busy):
            theirs are missing below.
          </p>
        </div>
      ) : null}
      {list.loading && !list.value ? <Loading label="Loading dead letters…" /> : null}
      {list.value ? (
        items.length === 0 ? (
          <p>No dead letters{service ? ` in ${service}` : ""}: every event was handled.</p>
        ) : (
          <div className="table-wrap" tabIndex={0} role="region" aria-label="Dead letters table">
            <table className="wide">
              <caption>
                Dead letters{service ? ` of ${service}` : ""} ({items.length})
              </caption>
              <thead>
                <tr>
                  <th scope="col">Event</th>
                  <th scope="col">Service</th>
                  <th scope="col">Queue</th>
                  <th scope="col" className="num">
                    Attempts
                  </th>
                  <th scope="col">Last error</th>
                  <th scope="col">Failed at</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {items.map((letter) => (
                  <tr key={`${letter.service}/${letter.event_id}`}>
                    <th scope="row">
                      {letter.type ?? "(not an event)"}
                      <br />
                      <code className="muted">{shortId(letter.event_id)}</code>
                    </th>
                    <td>{letter.service}</td>
                    <td>
                      <code>{letter.queue ?? "—"}</code>
                    </td>
                    <td className="num">{letter.attempts ?? "—"}</td>
                    <td>{letter.error ?? "—"}</td>
                    <td>{letter.failed_at ? formatDate(letter.failed_at) : "—"}</td>
                    <td>
                      <button
                        type="button"
                        className="button secondary"
                        aria-label={`Inspect ${letter.type ?? "dead letter"} ${shortId(letter.event_id)}`}
                        aria-pressed={
                          selected?.event_id === letter.event_id && selected.service === letter.service
                        }
                        onClick={() => setSelected(letter)}
                      >
                        Inspect
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : null}
      {selected ? (
        <LetterDetail
          key={`${selected.service}/${selected.event_id}`}
          letter={selected}
          onClose={() => setSelected(null)}
          onDone={done}
        />
      ) : null}
    </StaffPage>
  );
}

function LetterDetail({
  letter,
  onClose,
  onDone,
}: {
  letter: DeadLetter;
  onClose: () => void;
  onDone: (message: string) => void;
}) {
  const auth = useAuth();
  const canWrite = auth.hasScope("ops:write");
  const detail = useApi((signal) => api.get<DeadLetterDetail>(letterPath(letter), { signal }), [letter]);
  const [failure, setFailure] = useState<unknown>(null);
  const headingRef = useRef<HTMLHeadingElement>(null);
  const name = `${letter.type ?? "dead letter"} ${shortId(letter.event_id)}`;

  useEffect(() => {
    headingRef.current?.focus();
  }, []);

  const act = async (action: "replay" | "discard") => {
    setFailure(null);
    try {
      if (action === "replay") await api.post(`${letterPath(letter)}/replay`);
      else await api.delete(letterPath(letter));
      onDone(
        action === "replay" ? `Replayed ${name} to ${letter.queue ?? "its queue"}.` : `Discarded ${name}.`,
      );
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        onDone(`${name} is gone already (replayed or discarded meanwhile).`);
        return;
      }
      setFailure(error);
    }
  };

  return (
    <section className="card" aria-labelledby="dead-letter-heading">
      <div className="staff-title">
        <h2 id="dead-letter-heading" ref={headingRef} tabIndex={-1}>
          {name}
        </h2>
        <button type="button" className="button secondary" onClick={onClose}>
          Close
        </button>
      </div>
      <dl className="staff-details">
        <dt>Event id</dt>
        <dd>
          <code>{letter.event_id}</code>
        </dd>
        <dt>Service</dt>
        <dd>{letter.service}</dd>
        <dt>Queue</dt>
        <dd>
          <code>{letter.queue ?? "—"}</code>
        </dd>
        <dt>Attempts</dt>
        <dd>{letter.attempts ?? "—"}</dd>
        <dt>Last error</dt>
        <dd>{letter.error ?? "—"}</dd>
        <dt>Failed at</dt>
        <dd>{letter.failed_at ? formatDate(letter.failed_at) : "—"}</dd>
      </dl>
      {detail.error ? (
        <ErrorMessage error={detail.error} title="Could not load the event." onRetry={detail.reload} />
      ) : !detail.value ? (
        <Loading label="Loading the event…" />
      ) : (
        <>
          <h3 id="dead-letter-event">Event body</h3>
          <pre className="staff-json" tabIndex={0} aria-labelledby="dead-letter-event">
            {prettyJson(detail.value.event)}
          </pre>
          {detail.value.headers && Object.keys(detail.value.headers).length > 0 ? (
            <details>
              <summary>Message headers</summary>
              <pre className="staff-json" tabIndex={0} aria-label="Message headers">
                {prettyJson(detail.value.headers)}
              </pre>
            </details>
          ) : null}
        </>
      )}
      <ErrorMessage error={failure} title="Not done." />
      {canWrite ? (
        <div className="row">
          <ConfirmAction
            label="Replay"
            ariaLabel={`Replay ${name}`}
            confirmLabel="Confirm replay"
            question={`Send ${name} back to ${letter.queue ?? "its handler"}? If the cause is not fixed it fails again.`}
            onConfirm={() => act("replay")}
          />
          <ConfirmAction
            label="Discard"
            ariaLabel={`Discard ${name}`}
            confirmLabel="Confirm discard"
            question={`Discard ${name} for good? It will never be handled.`}
            danger
            onConfirm={() => act("discard")}
          />
        </div>
      ) : (
        <p className="muted">{missingScopeMessage("ops:write")}</p>
      )}
    </section>
  );
}
