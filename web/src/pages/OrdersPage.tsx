export function OrdersPage() {
  return (
    <section>
      <h1>OrdersPage</h1>
    </section>
  );
}
