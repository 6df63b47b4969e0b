// EngineStats -> the plain dict that AudioManager.stats() returns.
#pragma once

#include <nanobind/nanobind.h>

#include "engine/audio_manager.h"

namespace sinkcast::bindings {

nanobind::dict stats_to_dict(const EngineStats& stats);

}  // namespace sinkcast::bindings
