/**
 * JSON from an event body, bounded: a size cap and a nesting cap checked before `JSON.parse`,
 * whose recursion a hostile body of a few thousand `[` would otherwise overflow.
 */
import { EventShapeError } from "./errors.ts";

export const MAX_EVENT_BODY_BYTES = 1024 * 1024;
export const MAX_EVENT_JSON_DEPTH = 64;

export function parseEventJson(eventType: string, body: string, maxDepth = MAX_EVENT_JSON_DEPTH): unknown {
  if (body.length > MAX_EVENT_BODY_BYTES) throw new EventShapeError(eventType, "body", `${body.length} characters`, `at most ${MAX_EVENT_BODY_BYTES} characters`);
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) throw new EventShapeError(eventType, "body", `JSON nested deeper than ${maxDepth} levels`, `JSON nested at most ${maxDepth} levels`);
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  try {
    return JSON.parse(body);
  } catch {
    throw new EventShapeError(eventType, "body", body, "JSON");
  }
}
