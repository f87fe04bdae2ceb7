/** `/notifications`: the messages Agora sent you (email and text), newest first. */

import { api } from "../api/client";
import type { Page } from "../api/types";
import { ErrorMessage } from "../components/ErrorMessage";
import { Loading } from "../components/Loading";
import { Pagination, useCursorPages } from "../components/Pagination";
import { RequireSignIn } from "../components/RequireSignIn";
import { formatDate } from "../lib/format";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";

interface NotificationItem {
  id: string;
  channel: string;
  template: string;
  recipient: string;
  subject: string | null;
  status: string;
  attempts: number;
  created_at: string;
  sent_at: string | null;
  event_type: string;
}

const TEMPLATE_TEXT: Record<string, string> = {
  order_confirmed: "Order confirmed",
  order_cancelled: "Order cancelled",
  order_rejected: "Order rejected",
  order_expired: "Order expired",
  payment_failed: "Payment failed",
  receipt: "Receipt",
  welcome: "Welcome",
  email_verification: "Confirm your email address",
  phone_verification: "Your phone verification code",
};

export function NotificationsPage() {
  usePageTitle("Notifications");
  return (
    <RequireSignIn title="Notifications">
      <NotificationList />
    </RequireSignIn>
  );
}

function NotificationList() {
  const pages = useCursorPages();
  const list = useApi(
    (signal) => api.get<Page<NotificationItem>>("/v1/notifications", { query: { cursor: pages.cursor, limit: 20 }, signal }),
    [pages.cursor],
  );
  const items = list.value?.items ?? [];
  return (
    <section aria-labelledby="notifications-heading">
      <h1 id="notifications-heading">Notifications</h1>
      <ErrorMessage error={list.error} title="Could not load your notifications." onRetry={list.reload} />
      {list.loading && !list.value ? <Loading label="Loading notifications…" /> : null}
      {!list.loading && !list.error && items.length === 0 ? <p role="status">No notifications yet.</p> : null}
      {items.length > 0 ? (
        <ul className="lines card" aria-label="Notifications">
          {items.map((item) => (
            <li key={item.id}>
              <div>
                <strong>{item.subject || TEMPLATE_TEXT[item.template] || item.template.replace(/_/g, " ")}</strong>
                <div className="muted">
                  {item.channel === "sms" ? "Text message" : "Email"} to {item.recipient || "unknown"} ·{" "}
                  {formatDate(item.sent_at ?? item.created_at)}
                </div>
              </div>
              <span className={`badge ${item.status === "sent" ? "ok" : item.status === "failed" ? "bad" : "wait"}`}>
                {item.status}
              </span>
            </li>
          ))}
        </ul>
      ) : null}
      <Pagination pages={pages} nextCursor={list.value?.next_cursor} label="Notification pages" />
    </section>
  );
}
