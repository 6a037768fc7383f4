# Helpers shared by the CMakeLists of each room of the tree.

# airbag_library(NAME DEPS dep...): a static library of every *.cc in the
# current folder (an empty INTERFACE library while the folder has none yet).
function(airbag_library name)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB _srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  if(_srcs)
    add_library(${name} STATIC ${_srcs})
    target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}
                                              ${CMAKE_BINARY_DIR}/generated)
    target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  else()
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}
                                                 ${CMAKE_BINARY_DIR}/generated)
    target_link_libraries(${name} INTERFACE ${ARG_DEPS})
  endif()
endfunction()

# airbag_tests(DEPS dep... [DEFS d...] [TIMEOUT s] [LONG name...]): one
# GoogleTest executable per *_test.cc in the current folder, registered with
# ctest. The executables named in LONG run for a fixed time: ctest starts them
# first, so they overlap with the many short ones instead of ending the run.
function(airbag_tests)
  cmake_parse_arguments(ARG "" "TIMEOUT" "DEPS;DEFS;LONG" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  file(GLOB _tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_test.cc)
  # Labelled by the folder under tests/ ("unit", "integration"): ctest -L unit.
  file(RELATIVE_PATH _rel ${PROJECT_SOURCE_DIR}/tests ${CMAKE_CURRENT_SOURCE_DIR})
  string(REGEX REPLACE "/.*" "" _label "${_rel}")
  foreach(_t IN LISTS _tests)
    get_filename_component(_name ${_t} NAME_WE)
    add_executable(${_name} ${_t})
    target_link_libraries(${_name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
    target_compile_definitions(${_name} PRIVATE ${ARG_DEFS})
    if(AIRBAG_TSAN)
      # Debian's abseil is not built for TSan: tell it about absl::Mutex (tests/tsan/).
      target_sources(${_name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/tsan/absl_mutex_tsan.cc)
      target_link_libraries(${_name} PRIVATE ${CMAKE_DL_LIBS})
    endif()
    set(_cost 1)
    if(_name IN_LIST ARG_LONG)
      set(_cost 1000)
    endif()
    gtest_discover_tests(${_name} DISCOVERY_TIMEOUT 60
                         PROPERTIES TIMEOUT ${ARG_TIMEOUT} COST ${_cost} LABELS ${_label})
  endforeach()
endfunction()
