/** Types for cytoscape-elk (the package ships none): a Cytoscape extension registering the `elk` layout. */
declare module 'cytoscape-elk' {
  import type { Ext } from 'cytoscape';

  /** Register with `cytoscape.use(elk)`. */
  const elk: Ext;
  export default elk;
}
