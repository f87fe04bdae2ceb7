export function CatalogPage() {
  return (
    <section>
      <h1>CatalogPage</h1>
    </section>
  );
}
