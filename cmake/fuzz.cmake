# VIDQ_FUZZ=ON: the libFuzzer harnesses of tests/fuzz/ (clang only; Debian:
# clang + libclang-rt-14-dev). Every target of ours is built with the
# fuzzer's coverage instrumentation; the harnesses link the fuzzer's main.
# Configure with CC=clang and -DSANITIZE=ON (tests/fuzz/run.sh does).
option(VIDQ_FUZZ "Build the libFuzzer harnesses of tests/fuzz (needs clang)" OFF)
if(VIDQ_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "VIDQ_FUZZ needs clang (CC=clang): -fsanitize=fuzzer")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
