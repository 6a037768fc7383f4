# llhttp (Node.js's HTTP/1.1 parser) is shipped by Debian's node-llhttp as C
# sources; we compile them into a static library of our own.
find_path(LLHTTP_INCLUDE_DIR llhttp.h PATHS /usr/share/include/llhttp /usr/include/llhttp REQUIRED)
find_path(LLHTTP_SOURCE_DIR llhttp.c PATHS /usr/share/llhttp REQUIRED)
add_library(llhttp STATIC
  ${LLHTTP_SOURCE_DIR}/api.c
  ${LLHTTP_SOURCE_DIR}/http.c
  ${LLHTTP_SOURCE_DIR}/llhttp.c)
target_include_directories(llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
set_target_properties(llhttp PROPERTIES C_STANDARD 99 POSITION_INDEPENDENT_CODE ON)
target_compile_options(llhttp PRIVATE -w)
# Strict mode: the chunk-data CRLF, header tokens and header values are checked
# to the letter. The loose build accepts bytes that let a request be smuggled.
target_compile_definitions(llhttp PRIVATE LLHTTP_STRICT_MODE=1)
