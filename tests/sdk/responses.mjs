// The official openai SDK's Responses API through the gateway, unmodified:
// responses.create as JSON and as a stream; prints what the SDK made of it.
// Usage: BASE_URL=http://127.0.0.1:4000 API_KEY=sk-... MODEL=gpt-4 node responses.mjs
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.BASE_URL + '/v1', apiKey: process.env.API_KEY, maxRetries: 0 });
const model = process.env.MODEL || 'gpt-4';
const out = {};

const r = await client.responses.create({ model, input: 'hello there friend', instructions: 'be brief' });
out.json = { id: r.id, status: r.status, text: r.output_text, usage: r.usage };

const stream = await client.responses.create({ model, input: [{ role: 'user', content: 'hello there friend' }], stream: true });
const types = [];
let text = '';
let usage = null;
for await (const ev of stream) {
  types.push(ev.type);
  if (ev.type === 'response.output_text.delta') text += ev.delta;
  if (ev.type === 'response.completed') usage = ev.response.usage;
}
out.stream = { types, text, usage };

try {
  await client.responses.create({ model: model + '@no_responses=1', input: 'x' });
  out.unsupported = null;
} catch (e) {
  out.unsupported = { status: e.status, type: e.error?.type ?? e.type };
}
console.log(JSON.stringify(out));
