/**
 * The user RPC service: get one user, list a page of users. With `http.token` set both need a token (the read token
 * will do): they return e-mail addresses.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { UserNotFound } from "../Errors.js"
import { UserModel } from "../repository/UserModel.js"
import * as Auth from "./Auth.js"
import { UserList, UserRpcs } from "./Rpcs.js"

/**
 * The handlers, over the `UserModel` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (tokens: Auth.Tokens) =>
  UserRpcs.toLayer(Effect.gen(function*() {
    const users = yield* UserModel
    return UserRpcs.of({
      GetUser: ({ id }, { headers }) =>
        Effect.zipRight(
          Auth.authorize(tokens, "read", headers, "GetUser"),
          Effect.flatMap(
            users.findById(id),
            Option.match({
              onNone: () => Effect.fail(new UserNotFound({ id })),
              onSome: Effect.succeed
            })
          )
        ),
      ListUsers: ({ page, pageSize }, { headers }) =>
        Effect.zipRight(
          Auth.authorize(tokens, "read", headers, "ListUsers"),
          Effect.map(users.list(page, pageSize), ({ total, users }) => new UserList({ users, total, page, pageSize }))
        )
    })
  }))
