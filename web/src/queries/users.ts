/** Accounts: the Users page reads them a page at a time; the audit log's user filter needs every one. */

import { useCallback, useState } from "react";
import type { CreateUserRequest, UpdateUserRequest, UserList } from "../../../src/api/contract.js";
import { collectPages } from "../../../src/client/index.js";
import { client } from "../api.js";
import { useResource } from "./resource.js";

export const userPageSize = 100;

/** Users, oldest first: the first page, then the next ones on request (`loadMore` rejects when that read fails). */
export function useUserList() {
  const first = useResource<UserList>(() => client.listUsers({ limit: userPageSize }), []);
  const [loadingMore, setLoadingMore] = useState(false);
  const { data, set } = first;
  const loadMore = useCallback(async () => {
    if (!data?.nextCursor) return;
    setLoadingMore(true);
    try {
      const next = await client.listUsers({ limit: userPageSize, cursor: data.nextCursor });
      // A user created meanwhile was added at the end already; its page brings it again.
      const known = new Set(data.items.map((u) => u.id));
      set({ items: [...data.items, ...next.items.filter((u) => !known.has(u.id))], nextCursor: next.nextCursor });
    } finally {
      setLoadingMore(false);
    }
  }, [data, set]);
  return { ...first, loadMore, loadingMore };
}

/** Every user, for pickers: pages of the largest size, read one after another. */
export const useAllUsers = () =>
  useResource(() => collectPages((page) => client.listUsers(page), { pageSize: 500 }), []);

export const createUser = (request: CreateUserRequest) => client.createUser(request);
export const updateUser = (id: string, request: UpdateUserRequest) => client.updateUser(id, request);
