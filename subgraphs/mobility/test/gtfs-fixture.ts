// A small valid GTFS feed for the importer's tests (each test changes one file of it).

/** A minimal valid feed; tests change one file. */
export function tinyFeed(): Record<string, string> {
  return {
    'agency.txt': 'agency_id,agency_name,agency_url,agency_timezone\nA,Test,https://example.org/,Europe/Paris\n',
    'stops.txt': 'stop_id,stop_name,stop_lat,stop_lon\nS1,One,48.95,4.36\nS2,Two,48.96,4.37\n',
    'routes.txt': 'route_id,agency_id,route_short_name,route_type,route_color\nR1,A,1,3,E2001A\n',
    'trips.txt': 'route_id,service_id,trip_id,shape_id,direction_id,block_id\nR1,WK,T1,SH1,0,B1\n',
    'stop_times.txt': 'trip_id,arrival_time,departure_time,stop_id,stop_sequence,shape_dist_traveled\nT1,08:00:00,08:00:00,S1,1,0\nT1,08:05:00,08:05:30,S2,2,1300\n',
    'calendar.txt': 'service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\nWK,1,1,1,1,1,0,0,20260101,20281231\n',
    'shapes.txt': 'shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence\nSH1,48.95,4.36,1\nSH1,48.96,4.37,2\n',
  };
}
