#include <fmt/core.h>
int main() { fmt::print("attn\n"); return 0; }
