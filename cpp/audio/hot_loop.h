// SINKCAST_HOT_LOOP marks the few loops that carry the audio.
#pragma once

// Hot loops are compiled twice on x86-64 (baseline SSE2 and AVX2+FMA) and
// picked at load time, so one wheel is fast on every CPU.
// Not under the sanitizers: their runtimes are not ready when ifunc resolvers run.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define SINKCAST_HOT_LOOP __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SINKCAST_HOT_LOOP
#endif
