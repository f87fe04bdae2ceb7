/**
 * /staff: a card for each back-office section the token's scopes allow (a
 * section without its scope is not shown), and a word about the rest.
 */

import { Link } from "react-router";
import { useAuth } from "../../auth";
import { StaffPage } from "./common";
import { SECTIONS, visibleSections } from "./sections";

export function StaffIndexPage() {
  const auth = useAuth();
  const sections = visibleSections(auth.scopes);
  const hidden = SECTIONS.length - sections.length;
  return (
    <StaffPage title="Back office" back={null}>
      {sections.length === 0 ? (
        <div className="alert" role="alert">
          <p>Your account has no permission for any back-office section.</p>
        </div>
      ) : (
        <ul className="staff-sections" aria-label="Back-office sections">
          {sections.map((section) => (
            <li key={section.path} className="card">
              <h2>
                <Link to={section.path}>{section.title}</Link>
              </h2>
              <p className="muted">{section.description}</p>
            </li>
          ))}
        </ul>
      )}
      {hidden > 0 && sections.length > 0 ? (
        <p className="muted">
          {hidden === 1 ? "One more section needs" : `${hidden} more sections need`} a permission this account
          does not have.
        </p>
      ) : null}
    </StaffPage>
  );
}
