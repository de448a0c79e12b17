import { EmptyState } from "../../components/feedback.js";
import { Link } from "../../router.js";

export function NotFoundPage() {
  return (
    <EmptyState title="Page not found">
      <p>There is nothing here, or you do not have access to it.</p>
      <Link to="/environments" className="button">
        Go to environments
      </Link>
    </EmptyState>
  );
}
