// Chat with the gateway through the official `openai` SDK. No Tauri import here, so the
// same module runs under Node in the repository's tests (scripts/check-chat.mjs).
import OpenAI from 'openai';

export function gatewayClient({ url, token }) {
  return new OpenAI({
    baseURL: `${url}/v1`,
    apiKey: token, // AI_GATEWAY_TOKEN, which the app generated and gave the gateway
    dangerouslyAllowBrowser: true, // the key is a per-run token for a loopback server
    maxRetries: 0, // the gateway already retried upstream; it says so with x-should-retry
  });
}

export async function chat(info, model, text, onDelta = () => {}) {
  const stream = await gatewayClient(info).chat.completions.create({
    model,
    stream: true,
    messages: [{ role: 'user', content: text }],
  });
  let answer = '';
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta?.content ?? '';
    answer += delta;
    onDelta(delta);
  }
  return answer;
}
