#include "core/autograd/grad_mode.h"

namespace attn {
thread_local bool GradMode::enabled_ = true;
}
