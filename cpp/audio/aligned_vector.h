// std::vector whose storage starts on a cache line (64 bytes).
//
// The mix loops read and write 32-byte vectors. malloc only promises 16-byte
// alignment, so where a buffer happened to land decided whether half of those
// loads straddled two cache lines: the same mix ran 10-15 % faster or slower
// from one process to the next. Aligned buffers make the speed the same every
// time (and the fast one).
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
    void deallocate(T* p, size_t n) noexcept { ::operator delete(p, n * sizeof(T), kAlignment); }

    template <typename U>
    bool operator==(const CacheLineAllocator<U>&) const noexcept { return true; }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace sinkcast
