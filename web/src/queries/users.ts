import type { CreateUserRequest, UpdateUserRequest } from "../../../src/api/contract.js";
import { client } from "../api.js";
import { useResource } from "./resource.js";

export const useUsers = () => useResource(() => client.listUsers().then((page) => page.items), []);
export const createUser = (request: CreateUserRequest) => client.createUser(request);
export const updateUser = (id: string, request: UpdateUserRequest) => client.updateUser(id, request);
