/**
 * /staff/services (ops:read): `GET /v1/ops/services`: every service's running
 * instances (process, host, pid, started, last heartbeat), its RPC queue's
 * depth and consumers, and the gateway's circuit breaker for it (closed,
 * half-open, open: in words as well as colour); the gateway's own processes;
 * the registry and broker checks. "Refresh" asks again, and the view
 * refreshes itself every few seconds while the tab is visible.
 */

import { useEffect, useState } from "react";
import { api } from "../../api/client";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Loading } from "../../components/Loading";
import { formatDate } from "../../lib/format";
import { useApi } from "../../lib/useApi";
import { BreakerBadge, RequireScope, StaffPage } from "./common";
import { SERVICES_REFRESH_MS, ago, countText } from "./display";

export interface Instance {
  instance_id: string;
  service: string;
  process: string;
  version: string;
  host: string;
  pid: number;
  started_at: string;
  metrics_url: string | null;
  last_heartbeat: string;
}

export interface ServiceState {
  instances: Instance[];
  rpc_queue: { name: string; messages: number | null; consumers: number | null };
  breaker: "closed" | "half_open" | "open";
}

export interface ServicesReport {
  services: Record<string, ServiceState>;
  gateway: { instances: Instance[] };
  checks: Record<string, { status: string; error?: string }>;
  checked_at: number;
}

export function ServicesPage() {
  return (
    <RequireScope scope="ops:read" title="Services">
      <Services />
    </RequireScope>
  );
}

/** Calls `tick` every `ms` while the page is visible, and at once when it becomes visible again. */
function useVisibleInterval(tick: () => void, ms: number) {
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") tick();
    }, ms);
    const onVisible = () => {
      if (document.visibilityState === "visible") tick();
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      clearInterval(timer);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [tick, ms]);
}

function Services() {
  const report = useApi((signal) => api.get<ServicesReport>("/v1/ops/services", { signal }), []);
  const [now, setNow] = useState(() => Date.now());
  useVisibleInterval(report.reload, SERVICES_REFRESH_MS);
  useEffect(() => {
    if (report.value) setNow(Date.now());
  }, [report.value]);

  const value = report.value;
  const names = value ? Object.keys(value.services).sort() : [];
  const failing = value ? Object.entries(value.checks).filter(([, check]) => check.status !== "ok") : [];

  return (
    <StaffPage
      title="Services"
      actions={
        <button
          type="button"
          className="button secondary"
          // Never disabled: the periodic refresh would take the focus away from it.
          onClick={report.reload}
          aria-busy={report.loading || undefined}
        >
          {report.loading ? <span className="spinner" aria-hidden="true" /> : null}
          Refresh
        </button>
      }
    >
      <p className="muted">
        Refreshes every {SERVICES_REFRESH_MS / 1000} s while this page is visible.
        {value ? ` Checked at ${formatDate(new Date(value.checked_at * 1000).toISOString())}.` : ""}
      </p>
      {report.error ? (
        <ErrorMessage
          error={report.error}
          title={
            value
              ? "Could not refresh: the figures below may be out of date."
              : "Could not load the services."
          }
          onRetry={report.reload}
        />
      ) : null}
      {!value && !report.error ? <Loading label="Loading the services…" /> : null}
      {failing.length > 0 ? (
        <div className="alert" role="alert">
          <p>
            {failing
              .map(
                ([name, check]) =>
                  `${name === "rabbitmq" ? "RabbitMQ" : `The ${name}`} is ${check.status}${check.error ? ` (${check.error})` : ""}`,
              )
              .join("; ")}
            : some figures are unknown.
          </p>
        </div>
      ) : null}
      {value ? (
        <>
          <div className="table-wrap" tabIndex={0} role="region" aria-label="Services summary table">
            <table>
              <caption>Services at a glance</caption>
              <thead>
                <tr>
                  <th scope="col">Service</th>
                  <th scope="col">Breaker</th>
                  <th scope="col" className="num">
                    Instances
                  </th>
                  <th scope="col" className="num">
                    Queued calls
                  </th>
                  <th scope="col" className="num">
                    Consumers
                  </th>
                </tr>
              </thead>
              <tbody>
                {names.map((name) => {
                  const service = value.services[name];
                  return (
                    <tr key={name}>
                      <th scope="row">
                        <a href={`#service-${name}`}>{name}</a>
                      </th>
                      <td>
                        <BreakerBadge state={service.breaker} />
                      </td>
                      <td className="num">
                        {service.instances.length === 0 ? (
                          <span className="badge bad">none</span>
                        ) : (
                          service.instances.length
                        )}
                      </td>
                      <td className="num">{countText(service.rpc_queue.messages)}</td>
                      <td className="num">{countText(service.rpc_queue.consumers)}</td>
                    </tr>
                  );
                })}
                <tr>
                  <th scope="row">
                    <a href="#service-gateway">gateway</a>
                  </th>
                  <td>—</td>
                  <td className="num">{value.gateway.instances.length}</td>
                  <td className="num">—</td>
                  <td className="num">—</td>
                </tr>
              </tbody>
            </table>
          </div>
          {names.map((name) => (
            <ServiceSection key={name} name={name} service={value.services[name]} now={now} />
          ))}
          <section
            className="card staff-service"
            id="service-gateway"
            aria-labelledby="service-gateway-heading"
          >
            <h2 id="service-gateway-heading">gateway</h2>
            <p className="muted">The gateway's processes (each keeps its own breakers).</p>
            <InstanceTable name="gateway" instances={value.gateway.instances} now={now} showMetrics />
          </section>
        </>
      ) : null}
    </StaffPage>
  );
}

function ServiceSection({ name, service, now }: { name: string; service: ServiceState; now: number }) {
  const headingId = `service-${name}-heading`;
  return (
    <section className="card staff-service" id={`service-${name}`} aria-labelledby={headingId}>
      <h2 id={headingId}>
        {name} <BreakerBadge state={service.breaker} />
      </h2>
      <p>
        RPC queue <code>{service.rpc_queue.name}</code>: {countText(service.rpc_queue.messages)} waiting,{" "}
        {countText(service.rpc_queue.consumers)} consumers.
        {service.breaker === "open"
          ? " The gateway's breaker is open: calls to this service fail fast until it recovers."
          : service.breaker === "half_open"
            ? " The breaker is half-open: the gateway is trying the service again."
            : ""}
      </p>
      <InstanceTable name={name} instances={service.instances} now={now} />
    </section>
  );
}

function InstanceTable({
  name,
  instances,
  now,
  showMetrics = false,
}: {
  name: string;
  instances: Instance[];
  now: number;
  showMetrics?: boolean;
}) {
  if (instances.length === 0) {
    return <p className="alert">No running instance of {name}.</p>;
  }
  const sorted = [...instances].sort((a, b) => a.process.localeCompare(b.process));
  return (
    <div className="table-wrap" tabIndex={0} role="region" aria-label={`${name} instances table`}>
      <table className="wide">
        <caption>Instances of {name}</caption>
        <thead>
          <tr>
            <th scope="col">Process</th>
            <th scope="col">Host</th>
            <th scope="col" className="num">
              PID
            </th>
            <th scope="col">Started</th>
            <th scope="col">Last heartbeat</th>
            <th scope="col">Version</th>
            {showMetrics ? <th scope="col">Metrics</th> : null}
          </tr>
        </thead>
        <tbody>
          {sorted.map((instance) => (
            <tr key={instance.instance_id}>
              <th scope="row">{instance.process}</th>
              <td>{instance.host}</td>
              <td className="num">{instance.pid}</td>
              <td>{formatDate(instance.started_at)}</td>
              <td>
                <time dateTime={instance.last_heartbeat} title={formatDate(instance.last_heartbeat)}>
                  {ago(instance.last_heartbeat, now)}
                </time>
              </td>
              <td>{instance.version}</td>
              {showMetrics ? (
                <td>{instance.metrics_url ? <code>{instance.metrics_url}</code> : "—"}</td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
