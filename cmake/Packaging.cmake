# Packaging.cmake -- install rules for data files and CPack .deb packages.
#
#   cmake --install build --prefix /usr          everything (programs, definitions, units, docs)
#   (cd build && cpack -G DEB)                   two packages:
#     tonghop-publish    the unit agent: tonghop-publish, its systemd unit and config
#     tonghop-collector  the server: tonghop-collector, tonghop, appendix definitions,
#                        sample hierarchies, systemd unit and config
#
# The programs' own install() rules (component "Unspecified") serve `cmake --install`;
# the packages use the components "agent" and "server" declared here.

set(TH_PKG_DIR ${TH_SOURCE_DIR}/packaging)
set(TH_SHARE ${CMAKE_INSTALL_DATADIR}/tonghop)
set(TH_UNITDIR lib/systemd/system)

# -- data files: everything the server needs at run time
install(DIRECTORY ${TH_SOURCE_DIR}/schema/appendices/ DESTINATION ${TH_SHARE}/appendices
        COMPONENT server FILES_MATCHING PATTERN "*.def" PATTERN "*.md")
install(FILES ${TH_SOURCE_DIR}/data/hanoi-2021.units ${TH_SOURCE_DIR}/data/vn-2021.units
        DESTINATION ${TH_SHARE}/units COMPONENT server)
file(GLOB TH_MAN1 CONFIGURE_DEPENDS ${TH_SOURCE_DIR}/docs/man/*.1)
file(GLOB TH_MAN5 CONFIGURE_DEPENDS ${TH_SOURCE_DIR}/docs/man/*.5)
file(GLOB TH_MAN8 CONFIGURE_DEPENDS ${TH_SOURCE_DIR}/docs/man/*.8)
foreach(f ${TH_MAN1} ${TH_MAN5} ${TH_MAN8})
  get_filename_component(n ${f} NAME)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" sec ${n})
  if(n MATCHES "^tonghop-publish")
    set(comp agent)
  else()
    set(comp server)
  endif()
  install(FILES ${f} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${sec} COMPONENT ${comp})
endforeach()

# -- the packages' programs, services, configuration and docs
if(TARGET tonghop-publish)
  install(TARGETS tonghop-publish RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT agent)
endif()
foreach(t tonghop-collector tonghop)
  if(TARGET ${t})
    install(TARGETS ${t} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT server)
  endif()
endforeach()
install(FILES ${TH_PKG_DIR}/tonghop-publish.service DESTINATION ${TH_UNITDIR} COMPONENT agent)
install(FILES ${TH_PKG_DIR}/tonghop-collector.service DESTINATION ${TH_UNITDIR} COMPONENT server)
install(FILES ${TH_PKG_DIR}/publish.conf DESTINATION /etc/tonghop COMPONENT agent)
install(FILES ${TH_PKG_DIR}/collector.conf DESTINATION /etc/tonghop COMPONENT server)
foreach(d operator-guide.md metrics.md)
  if(EXISTS ${TH_SOURCE_DIR}/docs/${d})
    install(FILES ${TH_SOURCE_DIR}/docs/${d} DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/tonghop-collector
            COMPONENT server)
  endif()
endforeach()
if(EXISTS ${TH_SOURCE_DIR}/docs/operator-guide.md)
  install(FILES ${TH_SOURCE_DIR}/docs/operator-guide.md
          DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/tonghop-publish COMPONENT agent)
endif()

# -- CPack
set(CPACK_PACKAGE_NAME tonghop)
set(CPACK_PACKAGE_VENDOR "tonghop")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "tonghop maintainers <tonghop@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "administrative-reform (CCHC) appendix collection and rollups")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_COMPONENTS_ALL agent server)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.invalid/tonghop")
find_program(TH_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(TH_DPKG_SHLIBDEPS)
  # the exact shared-library dependencies of the built programs
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(TH_DEPS_AGENT "passwd")
  set(TH_DEPS_SERVER "passwd")
else()
  set(TH_DEPS_AGENT "libc6, libzmq5, libmsgpackc2, liblmdb0, libsodium23, libunistring2, passwd")
  set(TH_DEPS_SERVER "${TH_DEPS_AGENT}, libxlsxwriter4")
endif()
set(CPACK_DEBIAN_AGENT_PACKAGE_NAME tonghop-publish)
set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS "${TH_DEPS_AGENT}")
set(CPACK_DEBIAN_AGENT_PACKAGE_RECOMMENDS "systemd")
set(CPACK_DEBIAN_AGENT_DESCRIPTION "tonghop unit agent: validates and delivers appendix files
tonghop-publish validates a unit's administrative-reform (CCHC) appendix files, keeps
them in a durable outbox and delivers them over ZeroMQ/CURVE to the central collector
until acknowledged. Includes a systemd service watching a drop folder.")
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_EXTRA
    "${TH_PKG_DIR}/debian/publish/postinst;${TH_PKG_DIR}/debian/publish/prerm;${TH_PKG_DIR}/debian/publish/postrm;${TH_PKG_DIR}/debian/publish/conffiles")
set(CPACK_DEBIAN_SERVER_PACKAGE_NAME tonghop-collector)
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "${TH_DEPS_SERVER}")
set(CPACK_DEBIAN_SERVER_PACKAGE_RECOMMENDS "systemd, lmdb-utils")
set(CPACK_DEBIAN_SERVER_DESCRIPTION "tonghop collector and tools: collects and rolls up appendices
tonghop-collector authenticates agents, deduplicates and durably stores their
administrative-reform (CCHC) appendix reports in LMDB and keeps rollups per level;
tonghop shows rollups, completeness and history and exports CSV, JSON and XLSX.
Includes the appendix definitions, sample hierarchies and a systemd service.")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
    "${TH_PKG_DIR}/debian/collector/postinst;${TH_PKG_DIR}/debian/collector/prerm;${TH_PKG_DIR}/debian/collector/postrm;${TH_PKG_DIR}/debian/collector/conffiles")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)   # debug info stays in the build tree
include(CPack)
