export function CartPage() {
  return (
    <section>
      <h1>CartPage</h1>
    </section>
  );
}
