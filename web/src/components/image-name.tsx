/**
 * An image reference that wraps between its parts (after `/`, `:` and `@`)
 * and at its hyphens, never in the middle of a name: a long registry path
 * reads as its parts on a phone and in a narrow column.
 */

import { Fragment } from "react";

export function ImageName({ image }: { image: string }) {
  const parts = image.split(/(?<=[/:@])/);
  return (
    <span className="mono image-name">
      {parts.map((part, i) => (
        // The parts of one reference never reorder; their position is their identity.
        // biome-ignore lint/suspicious/noArrayIndexKey: see above
        <Fragment key={i}>
          {part}
          {i < parts.length - 1 && <wbr />}
        </Fragment>
      ))}
    </span>
  );
}
