// The official openai SDK against llmgw's audio routes, unmodified:
// transcriptions, translations and speech.
// Usage: BASE_URL=http://127.0.0.1:4000 API_KEY=sk-... WAV=/path/a.wav node audio.mjs
// Prints one JSON object with what each call returned.
import fs from 'node:fs';
import OpenAI, { toFile } from 'openai';

const baseURL = process.env.BASE_URL + '/v1';
const client = new OpenAI({ baseURL, apiKey: process.env.API_KEY, maxRetries: 0 });
const wav = fs.readFileSync(process.env.WAV);
const out = {};

const t = await client.audio.transcriptions.create({
  file: await toFile(wav, 'a.wav', { type: 'audio/wav' }), model: 'whisper-1' });
out.transcription = { text: t.text, model: t.model };

const v = await client.audio.transcriptions.create({
  file: await toFile(wav, 'a.wav', { type: 'audio/wav' }), model: 'whisper-1',
  response_format: 'verbose_json', language: 'en', temperature: 0 });
out.verbose = { text: v.text, duration: v.duration, task: v.task };

const text = await client.audio.transcriptions.create({
  file: fs.createReadStream(process.env.WAV), model: 'whisper-1', response_format: 'text' });
out.text = text;

const tr = await client.audio.translations.create({
  file: await toFile(wav, 'a.wav'), model: 'whisper-1' });
out.translation = { text: tr.text };

const sp = await client.audio.speech.create({
  model: 'tts-1', voice: 'alloy', input: 'Hello from the gateway.', response_format: 'wav' });
const buf = Buffer.from(await sp.arrayBuffer());
out.speech = { status: sp.status, type: sp.headers.get('content-type'),
  bytes: buf.length, riff: buf.subarray(0, 4).toString('latin1'),
  wave: buf.subarray(8, 12).toString('latin1') };

try {
  await client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'x'.repeat(4097) });
} catch (e) {
  out.too_long = { status: e.status, type: e.type, param: e.param };
}
console.log(JSON.stringify(out));
