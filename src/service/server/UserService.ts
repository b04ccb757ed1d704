/**
 * The user RPC service: get one user, list a page of users.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { UserNotFound } from "../Errors.js"
import { UserModel } from "../repository/UserModel.js"
import { UserList, UserRpcs } from "./Rpcs.js"

/**
 * The handlers, over the `UserModel` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = UserRpcs.toLayer(Effect.gen(function*() {
  const users = yield* UserModel
  return UserRpcs.of({
    GetUser: ({ id }) =>
      Effect.flatMap(users.findById(id), Option.match({
        onNone: () => Effect.fail(new UserNotFound({ id })),
        onSome: Effect.succeed
      })),
    ListUsers: ({ page, pageSize }) =>
      Effect.map(users.list(page, pageSize), ({ total, users }) => new UserList({ users, total, page, pageSize }))
  })
}))
