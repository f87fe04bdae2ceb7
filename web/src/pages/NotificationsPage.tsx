export function NotificationsPage() {
  return (
    <section>
      <h1>NotificationsPage</h1>
    </section>
  );
}
