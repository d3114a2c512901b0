// libherd exports only what is marked HERD_API; everything else stays internal to the library.
#pragma once

#if defined(_WIN32)
#define HERD_API
#else
#define HERD_API __attribute__((visibility("default")))
#endif
