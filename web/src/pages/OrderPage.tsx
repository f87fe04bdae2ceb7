export function OrderPage() {
  return (
    <section>
      <h1>OrderPage</h1>
    </section>
  );
}
