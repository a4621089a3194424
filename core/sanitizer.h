// HAST_ASAN: 1 in a build with AddressSanitizer (gcc's -fsanitize=address defines
// __SANITIZE_ADDRESS__; clang before 22 tells only through __has_feature), else 0. Code
// that recycles memory itself (caches, pools) steps aside when it is 1, so that a use
// after free stays visible to the sanitizer.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define HAST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAST_ASAN 1
#endif
#endif
#ifndef HAST_ASAN
#define HAST_ASAN 0
#endif
