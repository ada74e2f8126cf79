// The scenarios the engine tests run inside a page: the real `openai` SDK and the Vercel
// AI SDK (`ai` + `@ai-sdk/openai`), bundled by esbuild into dist/sdk.js.
//
// Each scenario takes {baseURL, apiKey, model} and resolves to a plain object; the driver
// gets it as a JSON string (window.gatewayTests.run), so every engine returns the same.
import OpenAI from "openai";
import { generateText, jsonSchema, streamText, tool } from "ai";
import { createOpenAI } from "@ai-sdk/openai";

const MESSAGES = [{ role: "user", content: "Say hello." }];
const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

function openaiClient(o) {
  // a Tauri page is a browser: the SDK refuses to run there unless told it is on purpose
  return new OpenAI({ baseURL: o.baseURL + "/v1", apiKey: o.apiKey, dangerouslyAllowBrowser: true, maxRetries: 0 });
}

function vercelModel(o) {
  // .chat(): chat completions; the provider's default model speaks the Responses API
  return createOpenAI({ baseURL: o.baseURL + "/v1", apiKey: o.apiKey }).chat(o.model);
}

function describeError(err) {
  return {
    error: true,
    name: err && err.constructor ? err.constructor.name : typeof err,
    message: String(err && err.message),
    status: err.status ?? err.statusCode ?? null,
    requestId: err.requestID ?? err.request_id ?? null,
  };
}

const scenarios = {
  async "openai.whole"(o) {
    const { data, response } = await openaiClient(o).chat.completions
      .create({ model: o.model, messages: MESSAGES })
      .withResponse();
    return {
      text: data.choices[0].message.content,
      finishReason: data.choices[0].finish_reason,
      // readable only because the gateway exposes them (Access-Control-Expose-Headers)
      requestId: response.headers.get("x-request-id"),
      target: response.headers.get("x-gateway-target"),
    };
  },

  async "openai.stream"(o) {
    const stream = await openaiClient(o).chat.completions.create({
      model: o.model, messages: MESSAGES, stream: true, stream_options: { include_usage: true },
    });
    let text = "", chunks = 0, finishReason = null, usage = null;
    for await (const chunk of stream) {
      chunks += 1;
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      text += choice.delta.content || "";
      finishReason = choice.finish_reason || finishReason;
    }
    return { text, chunks, finishReason, usage };
  },

  async "openai.tools"(o) {
    const stream = await openaiClient(o).chat.completions.create({
      model: o.model, messages: MESSAGES, tools: [WEATHER_TOOL], stream: true,
    });
    const calls = [];
    let finishReason = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (!choice) continue;
      for (const delta of choice.delta.tool_calls || []) {
        const call = (calls[delta.index] ||= { id: null, name: "", arguments: "" });
        call.id = delta.id || call.id;
        call.name += (delta.function && delta.function.name) || "";
        call.arguments += (delta.function && delta.function.arguments) || "";
      }
      finishReason = choice.finish_reason || finishReason;
    }
    return { toolCalls: calls, finishReason };
  },

  async "openai.error"(o) {
    try {
      await openaiClient(o).chat.completions.create({ model: o.model, messages: MESSAGES });
      return { error: false };
    } catch (err) {
      return describeError(err);
    }
  },

  // stops reading after the first chunk: the SDK aborts the fetch, the gateway must
  // close its upstream connection at once
  async "openai.abort"(o) {
    const controller = new AbortController();
    const stream = await openaiClient(o).chat.completions.create(
      { model: o.model, messages: MESSAGES, stream: true }, { signal: controller.signal });
    let chunks = 0, abortedAt = null, outcome = "finished";
    try {
      for await (const chunk of stream) {
        chunks += 1;
        if (chunks === 1) {
          abortedAt = Date.now();
          controller.abort();
        }
      }
    } catch (err) {
      outcome = err.constructor.name;
    }
    return { chunks, abortedAt, outcome };
  },

  async "vercel.whole"(o) {
    const result = await generateText({ model: vercelModel(o), messages: MESSAGES, maxRetries: 0 });
    return { text: result.text, finishReason: result.finishReason, usage: result.usage };
  },

  async "vercel.stream"(o) {
    const result = streamText({ model: vercelModel(o), messages: MESSAGES, maxRetries: 0,
      onError: () => {} });
    let text = "", parts = 0, error = null;
    for await (const part of result.fullStream) {
      if (part.type === "text-delta") { text += part.text; parts += 1; }
      if (part.type === "error") error = describeError(part.error);
    }
    return error || { text, parts, finishReason: await result.finishReason };
  },

  async "vercel.tools"(o) {
    const result = await generateText({
      model: vercelModel(o), messages: MESSAGES, maxRetries: 0,
      tools: {
        get_weather: tool({
          description: "The weather in a city",
          inputSchema: jsonSchema({ type: "object", properties: { city: { type: "string" } }, required: ["city"] }),
        }),
      },
    });
    return {
      toolCalls: result.toolCalls.map((c) => ({ id: c.toolCallId, name: c.toolName, input: c.input })),
      finishReason: result.finishReason,
    };
  },

  async "vercel.error"(o) {
    try {
      await generateText({ model: vercelModel(o), messages: MESSAGES, maxRetries: 0 });
      return { error: false };
    } catch (err) {
      return describeError(err);
    }
  },
};

window.gatewayTests = {
  names: Object.keys(scenarios),
  origin: location.origin,
  async run(name, options) {
    let result;
    try {
      result = await scenarios[name](options);
    } catch (err) {
      result = { unexpected: true, ...describeError(err), stack: String(err && err.stack) };
    }
    return JSON.stringify(result);
  },
};
document.title = "ready";
