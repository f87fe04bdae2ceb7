export function CheckoutPage() {
  return (
    <section>
      <h1>CheckoutPage</h1>
    </section>
  );
}
