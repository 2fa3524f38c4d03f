/*
 * audio.h: the audio calls of the chat family (cgi-bin/llmgw-chat), as
 * llama-swap serves them (whisper, TTS servers beside the chat models):
 *
 *   POST /v1/audio/transcriptions, /v1/audio/translations: a
 *   multipart/form-data upload read up to [gateway] max_audio_bytes; its
 *   text fields (model, response_format, ...) are read by a bounded
 *   scanner (multipart.h), the audio never; the form is relayed as its
 *   bytes with the client's Content-Type, only the model field's value
 *   rewritten when an alias names another model. The answer (JSON, text,
 *   srt, vtt) is relayed as the upstream gives it.
 *
 *   POST /v1/audio/speech: a JSON body (model, input of at most 4096
 *   characters, voice, response_format, speed), validated and aliased;
 *   the binary answer (audio/mpeg, audio/wav, ...) is streamed to the
 *   client chunk by chunk as it arrives, with the upstream's Content-Type.
 *
 * The same keys, model lists, budgets and limits as chat; one spend row
 * each (call_type "atranscription" or "aspeech" as LiteLLM), priced per
 * second of audio the upstream reports, per character spoken, or per
 * request ([prices] units, price.h).
 */
#ifndef GW_AUDIO_H
#define GW_AUDIO_H

#include "capture.h" /* enum gw_call */
#include "err.h"

struct gw_req;
struct gw_route_call;

/*
 * Relay one audio call (GW_CALL_TRANSCRIPTION, GW_CALL_TRANSLATION or
 * GW_CALL_SPEECH) for the caller the dispatcher authenticated (taken from
 * c); always replies (or the client is gone). GW_OK, or GW_DETACHED
 * when a speech call goes on on the event loop.
 */
enum gw_status gw_audio_relay(struct gw_req *req, enum gw_call call,
    struct gw_route_call *c) GW_NONNULL(1, 3);

/*
 * The characters (UTF-8 code points) of s[0, n), or -1 when it is not
 * valid UTF-8: what a speech input is bounded and priced by.
 */
long gw_audio_chars(const char *s, size_t n) GW_NONNULL(1);

#endif /* GW_AUDIO_H */
