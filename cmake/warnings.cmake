# vidq_warnings: the warning flags every target of ours links against.
# Warnings are errors when CMAKE_COMPILE_WARNING_AS_ERROR is on (CI sets it).
add_library(vidq_warnings INTERFACE)
target_compile_options(vidq_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wformat=2 -Wvla -Wpointer-arith -Wcast-qual -Wundef
  -Wno-unused-parameter -Wno-missing-field-initializers
  -fno-common)
