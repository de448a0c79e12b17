import { Link } from "../../router.js";

export function NotFoundPage() {
  return (
    <div className="empty">
      <h1>Page not found</h1>
      <p>There is nothing here, or you do not have access to it.</p>
      <Link to="/environments" className="button">
        Go to environments
      </Link>
    </div>
  );
}
