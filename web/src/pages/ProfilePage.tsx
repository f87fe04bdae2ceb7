export function ProfilePage() {
  return (
    <section>
      <h1>ProfilePage</h1>
    </section>
  );
}
