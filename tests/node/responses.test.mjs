// The openai npm SDK's Responses API against a running gateway (GATEWAY_URL), run by
// tests/test_node_sdk.py with the gateway and upstream of the Python suite.
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: `${process.env.GATEWAY_URL}/v1`, apiKey: "unused", maxRetries: 0 });
const weather = {
  type: "function", name: "get_weather", strict: false,
  parameters: { type: "object", properties: { city: { type: "string" } } },
};

for (const model of ["up/text", "openresp/text", "claude/text"]) {
  test(`responses.create answers (${model})`, async () => {
    const reply = await client.responses.create({ model, input: "hi", instructions: "be brief" });
    assert.equal(reply.output_text, "Hello! 你好 👋");
    assert.equal(reply.status, "completed");
  });

  test(`responses.stream assembles the answer (${model})`, async () => {
    const stream = client.responses.stream({ model, input: "hi" });
    let text = "";
    stream.on("response.output_text.delta", (event) => { text += event.delta; });
    const final = await stream.finalResponse();
    assert.equal(text, final.output_text);
    assert.ok(final.output_text.startsWith("Hello! 你好 👋"));
    assert.equal(final.usage.total_tokens, 15);
  });
}

for (const stream of [false, true]) {
  test(`function calls come back as function_call items (stream: ${stream})`, async () => {
    const request = { model: "up/tools", input: "weather in Paris?", tools: [weather] };
    const reply = stream
      ? await client.responses.stream(request).finalResponse()
      : await client.responses.create(request);
    const calls = reply.output.filter((item) => item.type === "function_call");
    assert.equal(calls.length, 1);
    assert.equal(calls[0].name, "get_weather");
    assert.deepEqual(JSON.parse(calls[0].arguments), { city: "Paris" });
  });
}

test("previous_response_id continues the conversation", async () => {
  const model = `up/echo-body:node-${Date.now()}`;
  const first = await client.responses.create({ model, input: "first" });
  const second = await client.responses.create({ model, input: "second", previous_response_id: first.id });
  const seen = JSON.parse(second.output_text).messages;
  assert.deepEqual(seen.map((m) => m.role), ["user", "assistant", "user"]);
  assert.equal(seen[0].content, "first");
  assert.equal(seen[2].content, "second");
  await assert.rejects(
    client.responses.create({ model, input: "x", previous_response_id: "resp_unknown" }),
    (err) => err instanceof OpenAI.NotFoundError,
  );
});

test("a failure mid-stream is an error, not a quiet end", async () => {
  const stream = await client.responses.create({ model: "up/error-event", input: "x", stream: true });
  const seen = [];
  await assert.rejects(async () => {
    for await (const event of stream) {
      seen.push(event.type);
      if (event.type === "error") throw new Error(event.message);
    }
  }, /mid-answer/);
  assert.equal(seen[0], "response.created");
  assert.ok(!seen.includes("response.completed"));
});
