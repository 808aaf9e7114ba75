// Which route of a port takes an HTTP request, and which mirrors get a copy of it: the routes'
// filters (headers, path prefix, method) matched against one request. Pure.
import type { PortRoute, RequestFilter } from '../protocol/intercept.ts';

/** What routing sees of a request, HTTP/1 or HTTP/2. */
export interface RequestView {
  method: string;
  /** The request target as received: a path (or an absolute URL), query included. */
  path: string;
  /** The values of the header `name` (lower case): each field of a repeated header on its own. */
  header(name: string): string[];
}

/** What `chooseRoutes` decided for a request. */
export interface RouteChoice {
  /** The route whose workstation answers; absent: the app answers. */
  take?: PortRoute;
  /** The mirror routes whose workstations get a copy (only of requests the app answers). */
  mirrors: PortRoute[];
}

/**
 * The route taking a request (the first match, mirrors excluded), and the mirrors that get a
 * copy: every matching mirror when the app answers, none when a workstation does. `routes` are
 * in the order to try them (see `routeOrder`).
 */
export function chooseRoutes(routes: PortRoute[], request: RequestView): RouteChoice {
  const path = pathOf(request.path);
  const matching = routes.filter((route) => matches(route.filter, request, path));
  const take = matching.find((route) => !route.mirror);
  return { take, mirrors: take ? [] : matching.filter((route) => route.mirror) };
}

/** Whether a request meets every condition of `filter` (no filter: every request does). */
function matches(filter: RequestFilter | undefined, request: RequestView, path: string): boolean {
  if (!filter) return true;
  if (filter.method && filter.method !== request.method) return false;
  if (filter.pathPrefix && !path.startsWith(filter.pathPrefix)) return false;
  return filter.headers.every(({ name, value }) => request.header(name.toLowerCase()).includes(value));
}

/** The path of a request target: without a scheme and authority (absolute form), query or fragment. */
function pathOf(target: string): string {
  const path = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '');
  return path.split(/[?#]/, 1)[0] || '/';
}
