export function ProductPage() {
  return (
    <section>
      <h1>ProductPage</h1>
    </section>
  );
}
