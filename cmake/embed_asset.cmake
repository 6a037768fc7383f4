# cmake -DIN=file -DOUT=file.cc -DNAME=kSymbol -DNAMESPACE=ns -P embed_asset.cmake
# Writes a C++ source that holds IN's bytes as `extern const std::string_view NAME`, so a
# file kept as itself in the tree (an HTML page) ships inside the binary.
file(READ "${IN}" _hex HEX)
string(LENGTH "${_hex}" _hex_len)
math(EXPR _size "${_hex_len} / 2")
# Sixteen bytes a line, each as '\xNN'.
set(_bytes "")
set(_at 0)
while(_at LESS _hex_len)
  string(SUBSTRING "${_hex}" ${_at} 32 _chunk)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," _chunk "${_chunk}")
  string(APPEND _bytes "${_chunk}\n")
  math(EXPR _at "${_at} + 32")
endwhile()
get_filename_component(_in_name "${IN}" NAME)
file(WRITE "${OUT}.tmp"
  "// Generated at build time from ${_in_name} by cmake/embed_asset.cmake; do not edit.\n"
  "#include <string_view>\n\n"
  "namespace ${NAMESPACE} {\n"
  "namespace {\n"
  "constexpr char kBytes[] = {\n${_bytes}'\\0'};\n"
  "}  // namespace\n"
  "extern const std::string_view ${NAME};\n"
  "const std::string_view ${NAME}(kBytes, ${_size});\n"
  "}  // namespace ${NAMESPACE}\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
