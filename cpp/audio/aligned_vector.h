// std::vector whose storage starts on a cache line (64 bytes).
//
// The mix loops read and write 32-byte vectors. malloc only promises 16-byte
// alignment, so where a buffer happened to land decided whether half of those
// loads straddled two cache lines: the same copy ran 10-15 % faster or slower
// from one process to the next. A ring's runs then start on a line whenever
// their frame offset allows (stereo periods of 480 frames always do).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace sinkcast {

template <typename T>
struct CacheLineAllocator {
    using value_type = T;
    static constexpr std::align_val_t kAlignment{64};

    CacheLineAllocator() = default;
    template <typename U>
    CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}

    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
    // Unsized: clang declares the sized form only with -fsized-deallocation.
    void deallocate(T* p, size_t) noexcept { ::operator delete(p, kAlignment); }

    template <typename U>
    bool operator==(const CacheLineAllocator<U>&) const noexcept { return true; }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace sinkcast
