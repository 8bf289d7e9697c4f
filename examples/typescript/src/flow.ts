// A chat app's whole flow through a client generated from Genesis's OpenAPI spec: a guest chats,
// asks for the context of its next model call, signs up taking the conversation along, goes on
// chatting, renames the conversation and lists its chats. Every response and error is typed by
// the spec (the `typed` checks below fail to compile if one is `any`).
//
//   GENESIS_URL=http://127.0.0.1:8000 node dist/flow.js
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

declare const process: { env: Record<string, string | undefined>; exitCode?: number };

type IsAny<T> = 0 extends 1 & T ? true : false;
/** Compiles only when `value` is not `any`. */
function typed<T>(value: IsAny<T> extends true ? never : T): T {
  return value as T;
}

type ApiError = components["schemas"]["ErrorBody"];

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${what}`);
}

/** The data of a successful call, or an exception naming the error code. */
function ok<D>(result: { data?: D; error?: ApiError; response: Response }, what: string): D {
  const error = typed(result.error);
  if (error !== undefined || result.data === undefined) {
    throw new Error(`${what}: ${result.response.status} ${error?.error.code}: ${error?.error.message}`);
  }
  return result.data;
}

const baseUrl = process.env["GENESIS_URL"] ?? "http://127.0.0.1:8000";
const client = createClient<paths>({ baseUrl });

async function main(): Promise<void> {
  // A guest session and two messages.
  const session = typed(ok(await client.POST("/v1/guest/sessions"), "guest session"));
  const guest = { "X-Guest-Token": session.guest_token };
  const path = { guest_id: session.guest_id };
  for (const [role, content] of [
    ["user", "How do I bake bread?"],
    ["assistant", "Flour, water, salt and time."],
  ] as const) {
    const stored = ok(
      await client.POST("/v1/guest/chat/{guest_id}", {
        params: { path },
        headers: guest,
        body: { role, content },
      }),
      "guest message",
    );
    check(stored.sequence >= 1 && !stored.duplicate, "stored in sequence");
  }

  // The context for the next model call.
  const context = typed(
    ok(
      await client.GET("/v1/guest/chat/{guest_id}/context", {
        params: { path, query: { token_budget: 1000 } },
        headers: guest,
      }),
      "guest context",
    ),
  );
  check(context.messages.length === 2 && !context.truncated, "both messages fit");
  check(context.messages[1]?.role === "assistant", "the context ends at the newest message");

  // Sign up, taking the guest's conversation along.
  const email = `ts-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`;
  const signup = typed(
    ok(
      await client.POST("/v1/auth/signup", {
        body: {
          email,
          password: "correct horse battery staple",
          guest_id: session.guest_id,
          guest_token: session.guest_token,
        },
      }),
      "signup",
    ),
  );
  const conversationId = signup.migration?.conversation_ids[0];
  check(conversationId !== undefined, "signup migrated the guest");
  check(signup.migration?.messages_migrated === 2, "both messages moved");
  const user = { Authorization: `Bearer ${signup.access_token}` };
  const id = { id: conversationId };

  // The chat goes on in the account.
  const next = ok(
    await client.POST("/v1/conversations/{id}/messages", {
      params: { path: id },
      headers: user,
      body: { role: "user", content: "And sourdough?" },
    }),
    "account message",
  );
  check(next.message_index === 3, "the account conversation continues at 3");

  // Rename it, and find it in the list.
  const renamed = ok(
    await client.PATCH("/v1/conversations/{id}", {
      params: { path: id },
      headers: user,
      body: { title: "Bread, then sourdough" },
    }),
    "rename",
  );
  check(renamed.title === "Bread, then sourdough", "renamed");
  const list = typed(
    ok(await client.GET("/v1/conversations", { headers: user }), "list conversations"),
  );
  const listed = list.conversations.find((c) => c.id === conversationId);
  check(listed?.title === "Bread, then sourdough" && listed.message_count === 3, "listed");

  // Errors are typed too.
  const missing = await client.GET("/v1/conversations/{id}", {
    params: { path: { id: "00000000-0000-7000-8000-000000000000" } },
    headers: user,
  });
  const error = typed(missing.error);
  check(missing.response.status === 404, "an unknown conversation is 404");
  check(error?.error.code === "conversation_not_found", "with its code");

  console.log(`typescript client: guest → context → signup → chat → rename → list ok (${baseUrl})`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
