# SANITIZE=ON: ASan + UBSan for every target, aborting on the first report
# so that a test fails instead of printing and passing.
if(SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
  add_compile_definitions(VIDQ_SANITIZE=1)
endif()
