// The official openai SDK against llmgw: every call the gateway serves.
// Usage: BASE_URL=http://127.0.0.1:4000 API_KEY=sk-... node compat.mjs
// Prints one JSON object with what each call returned.
import OpenAI from 'openai';

const baseURL = process.env.BASE_URL + '/v1';
const client = new OpenAI({ baseURL, apiKey: process.env.API_KEY, maxRetries: 0 });
const messages = [{ role: 'user', content: 'hello there friend' }];
const out = {};

const chat = await client.chat.completions.create({ model: 'gpt-4', messages });
out.chat = { content: chat.choices[0].message.content, usage: chat.usage };

const stream = await client.chat.completions.create({ model: 'gpt-4', messages, stream: true });
let text = '';
let chunks = 0;
for await (const c of stream) {
  chunks++;
  text += c.choices[0]?.delta?.content ?? '';
}
out.stream = { text, chunks };

const usageStream = await client.chat.completions.create({
  model: 'gpt-4', messages, stream: true, stream_options: { include_usage: true } });
for await (const c of usageStream) {
  if (c.usage) out.stream_usage = c.usage;
}

const comp = await client.completions.create({ model: 'gpt-3.5-turbo', prompt: 'one two three' });
out.completion = { text: comp.choices[0].text, usage: comp.usage };

// The SDK asks for base64 and decodes it: a pass-through check.
const emb = await client.embeddings.create({ model: 'nomic-embed-text-v1.5', input: ['a b', 'c'] });
out.embeddings = { n: emb.data.length, dims: emb.data[0].embedding.length,
  first: emb.data[0].embedding[0], usage: emb.usage };
const embFloat = await client.embeddings.create({
  model: 'nomic-embed-text-v1.5', input: 'a b', encoding_format: 'float' });
out.embeddings_float_first = embFloat.data[0].embedding[0];

out.models = [];
for await (const m of client.models.list()) out.models.push(m.id);
out.model = await client.models.retrieve('gpt-4');

try {
  await client.chat.completions.create({ model: 'gpt-4', messages: [] });
} catch (e) {
  out.error = { status: e.status, type: e.type, param: e.param, code: e.code };
}
try {
  await client.models.retrieve('no-such-model');
} catch (e) {
  out.not_found = { status: e.status, param: e.param };
}
try {
  const bad = new OpenAI({ baseURL, apiKey: 'sk-not-a-key', maxRetries: 0 });
  await bad.chat.completions.create({ model: 'gpt-4', messages });
} catch (e) {
  out.auth_error = { status: e.status, type: e.type };
}
console.log(JSON.stringify(out));
