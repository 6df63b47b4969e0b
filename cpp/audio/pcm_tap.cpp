#include "audio/pcm_tap.h"

#include <cstring>

namespace sinkcast {

PcmTap::PcmTap(int channels, size_t capacity_frames) : ring_(capacity_frames, channels) {
    ring_.attach(&cursor_);
}

PcmTap::~PcmTap() {
    if (!made_before_fork()) ring_.detach(&cursor_);
}

void PcmTap::write(const float* frames, size_t count) {
    const size_t ch = static_cast<size_t>(ring_.channels());
    ring_.write(count, [&](float* dst, size_t offset, size_t n) {
        std::memcpy(dst, frames + offset * ch, n * ch * sizeof(float));
        return 1.0f;  // a sink's output is clipped to full scale
    });
}

size_t PcmTap::read(float* out, size_t max_frames) {
    const size_t ch = static_cast<size_t>(ring_.channels());
    // No prebuffer: a tap hands out whatever is there.
    return ring_.read(&cursor_, max_frames, 0, [&](const float* src, size_t offset, size_t n) {
        std::memcpy(out + offset * ch, src, n * ch * sizeof(float));
    });
}

}  // namespace sinkcast
