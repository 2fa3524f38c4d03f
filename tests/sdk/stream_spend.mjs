// One streamed chat through the official openai SDK, as LiteLLM's e2e tests
// do (chat_completion_streaming): prints the text and the usage it reported.
// Usage: BASE_URL=http://127.0.0.1:4000 API_KEY=sk-... MODEL=gpt-4 node stream_spend.mjs
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY, maxRetries: 0 });
const stream = await client.chat.completions.create({
  model: process.env.MODEL || 'gpt-4',
  messages: [{ role: 'system', content: 'You are a helpful assistant' },
             { role: 'user', content: 'Hello! ' + Date.now() }],
  stream: true, stream_options: { include_usage: true } });
let content = '';
let usage = null;
for await (const c of stream) {
  content += c.choices[0]?.delta?.content ?? '';
  if (c.usage) usage = c.usage;
}
console.log(JSON.stringify({ content, usage }));
